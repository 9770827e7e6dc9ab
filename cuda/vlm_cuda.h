/* vlm_cuda.h — the CUDA backend's C entry points beyond engine/backend.h: creation (also
 * reached through vlm_backend_new("cuda")) and the ceilings the GPU benchmark compares
 * itself with.  Only exists in builds with CUDA (VLM_HAVE_CUDA).
 */
#ifndef VLM_CUDA_H
#define VLM_CUDA_H

#ifdef __cplusplus
extern "C" {
#endif

#include "backend.h"

/* Create the CUDA backend on GPU `device` (see cuda/backend.cu).  Returns 0 and *out, or
 * a negative code with a message in err (no device, GPU older than sm_80, no memory). */
int vlm_backend_cuda_new(int device, vlm_backend **out, char *err);

/* Whether decode steps run as CUDA graphs from now on (the default comes from
 * VLM_CUDA_GRAPHS=1 at creation); the benchmark times both.  Not while recording. */
void vlm_cuda_set_graphs(vlm_backend *be, bool on);

/* What the GPU does at best, measured now on the backend's stream. */
typedef struct vlm_cuda_ceilings {
    char gpu[256];      /* device name */
    int cc_major, cc_minor, n_sm;
    double mem_gib;     /* device memory */
    double copy_gbps;   /* device-to-device cudaMemcpy of 1 GiB: (read + write) bytes / s */
    double gemm_tflops; /* cublasGemmEx 8192³, bf16 × bf16 → f32, f32 accumulation */
} vlm_cuda_ceilings;

/* Measure the ceilings on be (a "cuda" backend); allocates ~2.5 GiB for the time of the
 * call.  Returns 0, or a negative code with err. */
int vlm_cuda_measure_ceilings(vlm_backend *be, vlm_cuda_ceilings *out, char *err);

#ifdef __cplusplus
}
#endif

#endif
