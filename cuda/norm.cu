/* norm.cu — RMS_NORM and the elementwise ops ADD, SWIGLU, GELU (f32 in, f32 out).
 *
 * rms_norm_kernel: one block per row; the sum of squares is reduced in f32 (the CPU
 * reference uses double: the difference is ~1e-7 relative), then
 * out = w · (x · 1/sqrt(mean + eps)) in the reference's order.  The weight may be bf16
 * (as the CUDA backend stores it) or f32.  In place (out == x) is safe: each thread
 * reads its elements before writing them.
 * elementwise_kernel: one thread per element (4 per thread when every pointer is
 * 16-byte aligned and n % 4 == 0), the reference's formulas: silu(g)·u = g/(1+e^-g)·u,
 * exact GELU with erff.  No fast-math: expf/erff are the accurate versions.
 */
#include "common.cuh"

#define NORM_THREADS 256

/* out[i,:] = w · (x[i,:] / sqrt(mean(x[i,:]²) + eps)) */
__global__ void __launch_bounds__(NORM_THREADS)
rms_norm_kernel(float *out, const float *x, const void *w, bool w_bf16, int64_t d, float eps) {
    __shared__ float partial[NORM_THREADS / 32];
    const float *xi = x + (int64_t)blockIdx.x * d;
    float *oi = out + (int64_t)blockIdx.x * d;
    float ss = 0.0f;
    for (int64_t j = threadIdx.x; j < d; j += NORM_THREADS) ss += xi[j] * xi[j];
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x / 32] = ss;
    __syncthreads();
    float total = 0.0f;
#pragma unroll
    for (int i = 0; i < NORM_THREADS / 32; i++) total += partial[i];
    float r = 1.0f / sqrtf(total / (float)d + eps);
    for (int64_t j = threadIdx.x; j < d; j += NORM_THREADS)
        oi[j] = cuda_load_w(w, w_bf16, j) * (xi[j] * r);
}

int cuda_rms_norm(cuda_ctx *cx, cudaStream_t stream, const vlm_op *op) {
    vlm_tensor x = op->src[0], w = op->src[1];
    int64_t n = x.ne[0], d = cuda_ncols(x);
    if (n > INT32_MAX) return cuda_error(cx, VLM_EUNSUPPORTED, "rms_norm: %lld rows", (long long)n);
    rms_norm_kernel<<<(unsigned)n, NORM_THREADS, 0, stream>>>(
        (float *)op->out.data, (const float *)x.data, w.data, w.dtype == VLM_BF16, d,
        op->p.rms_norm.eps);
    CUDA_TRY(cudaGetLastError());
    return 0;
}

__device__ __forceinline__ float apply(vlm_op_kind kind, float a, float b) {
    switch (kind) {
    case VLM_OP_ADD: return a + b;
    case VLM_OP_SWIGLU: return a / (1.0f + expf(-a)) * b;
    default: return 0.5f * a * (1.0f + erff(a * 0.70710678118654752440f)); /* GELU */
    }
}

/* out[i] = f(a[i], b[i]); b is unused (may be NULL) for GELU.  out may alias a. */
template <vlm_op_kind K>
__global__ void elementwise_kernel(float *out, const float *a, const float *b, int64_t n,
                                   bool vec4) {
    int64_t stride = (int64_t)gridDim.x * blockDim.x;
    int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (vec4) {
        for (int64_t i = t; i < n / 4; i += stride) {
            float4 va = ((const float4 *)a)[i];
            float4 vb = K == VLM_OP_GELU ? make_float4(0, 0, 0, 0) : ((const float4 *)b)[i];
            float4 r = make_float4(apply(K, va.x, vb.x), apply(K, va.y, vb.y),
                                   apply(K, va.z, vb.z), apply(K, va.w, vb.w));
            ((float4 *)out)[i] = r;
        }
    } else {
        for (int64_t i = t; i < n; i += stride)
            out[i] = apply(K, a[i], K == VLM_OP_GELU ? 0.0f : b[i]);
    }
}

int cuda_elementwise(cuda_ctx *cx, cudaStream_t stream, const vlm_op *op) {
    int64_t n = vlm_tensor_numel(op->out);
    float *o = (float *)op->out.data;
    const float *a = (const float *)op->src[0].data, *b = (const float *)op->src[1].data;
    bool vec4 = n % 4 == 0 && cuda_aligned16(o) && cuda_aligned16(a) && (!b || cuda_aligned16(b));
    unsigned blocks = cuda_blocks(vec4 ? n / 4 : n, 256);
    switch (op->kind) {
    case VLM_OP_ADD:
        elementwise_kernel<VLM_OP_ADD><<<blocks, 256, 0, stream>>>(o, a, b, n, vec4);
        break;
    case VLM_OP_SWIGLU:
        elementwise_kernel<VLM_OP_SWIGLU><<<blocks, 256, 0, stream>>>(o, a, b, n, vec4);
        break;
    default:
        elementwise_kernel<VLM_OP_GELU><<<blocks, 256, 0, stream>>>(o, a, b, n, vec4);
        break;
    }
    CUDA_TRY(cudaGetLastError());
    return 0;
}
