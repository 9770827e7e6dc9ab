/* rows.cu — GET_ROWS (out[i,:] = src[idx[i],:] as f32, src bf16/f16/f32: the embedding
 * gather, the vision window permutation, KV-cache compaction, each sequence's last row
 * in a batched forward) and SET_ROWS (out[idx[i],:] = src[i,:], f32: vision rows
 * scattered into their pad slots, a batched forward's new K/V into each context's
 * cache).
 *
 * One block per index, threads across the row.  The indices live on the device, so a
 * bad one cannot be refused before launch as the CPU does: the kernel zero-fills
 * (get) or skips (set) that row and writes a fault code to the context's mapped word,
 * which the next get/synchronize reports as VLM_ERANGE.  SET_ROWS with repeated indices
 * leaves one of the writers' rows (unspecified which); the model never repeats one.
 */
#include "common.cuh"

#define ROWS_THREADS 128

template <typename T>
__device__ __forceinline__ float to_f32(T v);
template <>
__device__ __forceinline__ float to_f32<float>(float v) {
    return v;
}
template <>
__device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) {
    return __bfloat162float(v);
}
template <>
__device__ __forceinline__ float to_f32<__half>(__half v) {
    return __half2float(v);
}

template <typename T>
__global__ void __launch_bounds__(ROWS_THREADS)
get_rows_kernel(float *out, const T *src, const int32_t *idx, int64_t rows, int64_t d,
                int *fault) {
    int64_t i = blockIdx.x;
    int32_t r = idx[i];
    float *oi = out + i * d;
    if (r < 0 || r >= rows) {
        if (threadIdx.x == 0) *(volatile int *)fault = CUDA_FAULT_GET_ROWS;
        for (int64_t j = threadIdx.x; j < d; j += ROWS_THREADS) oi[j] = 0.0f;
        return;
    }
    const T *si = src + (int64_t)r * d;
    for (int64_t j = threadIdx.x; j < d; j += ROWS_THREADS) oi[j] = to_f32<T>(si[j]);
}

__global__ void __launch_bounds__(ROWS_THREADS)
set_rows_kernel(float *out, const float *src, const int32_t *idx, int64_t rows, int64_t d,
                int *fault) {
    int64_t i = blockIdx.x;
    int32_t r = idx[i];
    if (r < 0 || r >= rows) {
        if (threadIdx.x == 0) *(volatile int *)fault = CUDA_FAULT_SET_ROWS;
        return;
    }
    float *oi = out + (int64_t)r * d;
    const float *si = src + i * d;
    for (int64_t j = threadIdx.x; j < d; j += ROWS_THREADS) oi[j] = si[j];
}

int cuda_get_rows(cuda_ctx *cx, cudaStream_t stream, const vlm_op *op) {
    vlm_tensor src = op->src[0];
    int64_t n = op->out.ne[0], d = cuda_ncols(src), rows = src.ne[0];
    float *out = (float *)op->out.data;
    const int32_t *idx = (const int32_t *)op->src[1].data;
    if (n > INT32_MAX) return cuda_error(cx, VLM_EUNSUPPORTED, "get_rows: %lld rows", (long long)n);
    switch (src.dtype) {
    case VLM_BF16:
        get_rows_kernel<__nv_bfloat16><<<(unsigned)n, ROWS_THREADS, 0, stream>>>(
            out, (const __nv_bfloat16 *)src.data, idx, rows, d, cx->fault_dev);
        break;
    case VLM_F16:
        get_rows_kernel<__half><<<(unsigned)n, ROWS_THREADS, 0, stream>>>(
            out, (const __half *)src.data, idx, rows, d, cx->fault_dev);
        break;
    default:
        get_rows_kernel<float><<<(unsigned)n, ROWS_THREADS, 0, stream>>>(
            out, (const float *)src.data, idx, rows, d, cx->fault_dev);
        break;
    }
    CUDA_TRY(cudaGetLastError());
    return 0;
}

int cuda_set_rows(cuda_ctx *cx, cudaStream_t stream, const vlm_op *op) {
    vlm_tensor src = op->src[0];
    int64_t n = src.ne[0], d = cuda_ncols(src), rows = op->out.ne[0];
    if (n == 0) return 0;
    if (n > INT32_MAX) return cuda_error(cx, VLM_EUNSUPPORTED, "set_rows: %lld rows", (long long)n);
    set_rows_kernel<<<(unsigned)n, ROWS_THREADS, 0, stream>>>(
        (float *)op->out.data, (const float *)src.data, (const int32_t *)op->src[1].data, rows,
        d, cx->fault_dev);
    CUDA_TRY(cudaGetLastError());
    return 0;
}
