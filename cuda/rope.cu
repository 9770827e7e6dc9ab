/* rope.cu — ROPE, rotate-half: for each row i, head h and j < d/2,
 *   out[j]       = x[j]·cos[i,j] − x[j+d/2]·sin[i,j]
 *   out[j + d/2] = x[j+d/2]·cos[i,j] + x[j]·sin[i,j]
 * with the cos/sin tables made on the host (M-RoPE for the LLM, the 2-D vision RoPE, and
 * re-rotation of cached keys after eviction all use this one op).  Products and sums are
 * rounded separately (__fmul_rn/__fadd_rn: no FMA contraction), so the result is
 * bit-identical to the CPU reference.  One thread per pair: in place (out == x) is safe.
 */
#include "common.cuh"

__global__ void rope_kernel(float *out, const float *x, const float *cs, const float *sn,
                            int64_t n, int64_t heads, int64_t half) {
    int64_t pairs = n * heads * half, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < pairs; e += stride) {
        int64_t j = e % half, ih = e / half, i = ih / heads;
        const float *xi = x + ih * 2 * half;
        float *oi = out + ih * 2 * half;
        float c = cs[i * half + j], s = sn[i * half + j];
        float x0 = xi[j], x1 = xi[j + half];
        oi[j] = __fadd_rn(__fmul_rn(x0, c), -__fmul_rn(x1, s));
        oi[j + half] = __fadd_rn(__fmul_rn(x1, c), __fmul_rn(x0, s));
    }
}

int cuda_rope(cuda_ctx *cx, cudaStream_t stream, const vlm_op *op) {
    vlm_tensor x = op->src[0];
    int64_t n = x.ne[0], heads = x.ne[1], half = x.ne[2] / 2;
    if (half == 0) return 0;
    rope_kernel<<<cuda_blocks(n * heads * half, 256), 256, 0, stream>>>(
        (float *)op->out.data, (const float *)x.data, (const float *)op->src[1].data,
        (const float *)op->src[2].data, n, heads, half);
    CUDA_TRY(cudaGetLastError());
    return 0;
}
