/* ceilings.cu — the GPU's own best figures, measured in the same run as a benchmark so
 * that achieved GB/s and TFLOP/s can be read as fractions of something real: a
 * device-to-device copy (memory bandwidth) and a large bf16 GEMM of the kind MATMUL runs
 * (tensor-core throughput).  Benchmarks only: never called by the engine; its buffers
 * are allocated and freed inside the call.
 */
#include <stdio.h>

#include "common.cuh"
#include "vlm_cuda.h"

#define COPY_BYTES ((size_t)1 << 30)
#define GEMM_N 8192

/* ms per repetition of fn over reps, timed with events on the backend's stream */
template <typename F>
static int time_ms(cuda_ctx *cx, int reps, F fn, float *ms) {
    cudaEvent_t a, b;
    CUDA_TRY(cudaEventCreate(&a));
    CUDA_TRY(cudaEventCreate(&b));
    int rc = fn(); /* warm-up */
    if (!rc) {
        CUDA_TRY(cudaEventRecord(a, cx->stream));
        for (int r = 0; r < reps && !rc; r++) rc = fn();
        CUDA_TRY(cudaEventRecord(b, cx->stream));
        CUDA_TRY(cudaEventSynchronize(b));
        CUDA_TRY(cudaEventElapsedTime(ms, a, b));
        *ms /= (float)reps;
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    return rc;
}

static int measure(cuda_ctx *cx, vlm_cuda_ceilings *out, void **bufs) {
    CUDA_TRY(cudaMalloc(&bufs[0], COPY_BYTES));
    CUDA_TRY(cudaMalloc(&bufs[1], COPY_BYTES));
    CUDA_TRY(cudaMemsetAsync(bufs[0], 0, COPY_BYTES, cx->stream));
    float ms = 0;
    int rc = time_ms(cx, 20, [&]() -> int {
        CUDA_TRY(cudaMemcpyAsync(bufs[1], bufs[0], COPY_BYTES, cudaMemcpyDeviceToDevice,
                                 cx->stream));
        return 0;
    }, &ms);
    if (rc) return rc;
    out->copy_gbps = 2.0 * (double)COPY_BYTES / (ms * 1e6);

    size_t ab = (size_t)GEMM_N * GEMM_N * 2, cb = (size_t)GEMM_N * GEMM_N * 4;
    CUDA_TRY(cudaMalloc(&bufs[2], ab));
    CUDA_TRY(cudaMalloc(&bufs[3], ab));
    CUDA_TRY(cudaMalloc(&bufs[4], cb));
    CUDA_TRY(cudaMemsetAsync(bufs[2], 0x3c, ab, cx->stream)); /* bf16 0x3c3c ≈ 0.0115 */
    CUDA_TRY(cudaMemsetAsync(bufs[3], 0x3c, ab, cx->stream));
    const float one = 1.0f, zero = 0.0f;
    rc = time_ms(cx, 10, [&]() -> int {
        CUBLAS_TRY(cublasGemmEx(cx->blas, CUBLAS_OP_T, CUBLAS_OP_N, GEMM_N, GEMM_N, GEMM_N, &one,
                                bufs[2], CUDA_R_16BF, GEMM_N, bufs[3], CUDA_R_16BF, GEMM_N, &zero,
                                bufs[4], CUDA_R_32F, GEMM_N, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
        return 0;
    }, &ms);
    if (rc) return rc;
    out->gemm_tflops = 2.0 * GEMM_N * (double)GEMM_N * GEMM_N / (ms * 1e9);
    return 0;
}

extern "C" int vlm_cuda_measure_ceilings(vlm_backend *be, vlm_cuda_ceilings *out, char *err) {
    memset(out, 0, sizeof *out);
    if (strcmp(be->iface->name, "cuda") != 0)
        return vlm__errf(err, VLM_EINVAL, "ceilings: backend %s is not cuda", be->iface->name);
    cuda_ctx *cx = (cuda_ctx *)be->ctx;
    if (cx->broken) return vlm__errf(err, VLM_EBACKEND, "ceilings: %s", cx->last_error);
    snprintf(out->gpu, sizeof out->gpu, "%s", cx->gpu);
    out->cc_major = cx->cc_major;
    out->cc_minor = cx->cc_minor;
    out->n_sm = cx->n_sm;
    size_t free_b = 0, total_b = 0;
    cudaSetDevice(cx->device);
    cudaMemGetInfo(&free_b, &total_b);
    out->mem_gib = (double)total_b / 1073741824.0;
    void *bufs[5] = {NULL, NULL, NULL, NULL, NULL};
    int rc = measure(cx, out, bufs);
    cudaStreamSynchronize(cx->stream);
    for (int i = 0; i < 5; i++) cudaFree(bufs[i]);
    if (rc) return vlm__errf(err, rc, "ceilings: %s", cx->last_error);
    return 0;
}
