/* common.cuh — what the CUDA backend's files share: the backend context, CUDA_TRY, the
 * launcher of each op family, and a few device helpers.
 *
 * Not for: kernels (each op family keeps its own in its .cu) or anything the model code
 * sees (the engine talks to the backend through engine/backend.h only).
 * Invariants: every launcher takes the stream it runs on, checks cudaGetLastError()
 * after each launch through CUDA_TRY, and returns 0 or a negative VLM_E* code; a CUDA
 * failure marks the context broken (every later op fails with VLM_EBACKEND).
 * Thread: one caller at a time (the thread that owns the model), as for the CPU backend.
 */
#ifndef VLM_CUDA_COMMON_CUH
#define VLM_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

extern "C" {
#include "backend.h"
}

/* step graphs kept at once: single decode and batched decode at every batch size up to
 * 32 (sessions finish a chunk at different steps, so the batch shrinks step by step,
 * the same sizes every second) */
#define CUDA_GRAPH_SLOTS 34

/* attention implementation, from VLM_CUDA_ATTN at creation (a debugging switch) */
enum { CUDA_ATTN_AUTO = 0, CUDA_ATTN_SIMT = 1 };

/* An instantiated step graph and the key it was recorded under (least recently used
 * goes first when all slots are taken). */
typedef struct cuda_graph_slot {
    int64_t key;
    cudaGraphExec_t exec;
    uint64_t used;
} cuda_graph_slot;

/* The backend's state: device, stream, cuBLAS handle and the fixed workspaces, all
 * made in vlm_backend_cuda_new and sized once (no op allocates). */
typedef struct cuda_ctx {
    int device;
    char gpu[256];              /* device name, for messages */
    int cc_major, cc_minor;     /* compute capability */
    int n_sm;                   /* multiprocessors: sizes split-K grids */
    cudaStream_t stream;        /* every op, copy and sync runs on this stream */
    cublasHandle_t blas;
    void *blas_ws;              /* cuBLAS workspace (given to cublasSetWorkspace) */
    size_t blas_ws_bytes;
    __nv_bfloat16 *xbf;         /* matmul: x rounded to bf16, row blocks of at most this */
    int64_t xbf_elems;
    float *att_ws;              /* attention: split-K partials (m, l, acc[d]) */
    int64_t att_ws_floats;
    int *fault_host;            /* mapped pinned word: a kernel saw a bad row index */
    int *fault_dev;             /* the same word seen from the device */
    int attn_impl;              /* CUDA_ATTN_* */
    int dec_blocks_per_sm[5];   /* split-K decode occupancy by lanes' dims (1, 2, 4); 0 = unknown */
    bool graphs;                /* decode steps as CUDA graphs (VLM_CUDA_GRAPHS=1 at creation) */
    bool capturing;             /* between graph_begin and graph_end */
    int64_t capture_key;
    cuda_graph_slot graph_slots[CUDA_GRAPH_SLOTS];
    uint64_t graph_clock;
    int64_t graph_updates, graph_builds; /* counts, for the log at release */
    bool broken;                /* a CUDA call failed: every later op is refused */
    char last_error[VLM_ERR_LEN];
} cuda_ctx;

/* Record "file:line expr: message" as the context's error, mark it broken, log it and
 * return VLM_EBACKEND. */
int cuda_fail(cuda_ctx *cx, const char *file, int line, const char *expr, const char *msg);
/* Record a non-fatal error (bad argument, unsupported shape): returns code. */
int cuda_error(cuda_ctx *cx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* CUDA_TRY(expr): expr is a CUDA runtime call; on failure records it in the context
 * `cx` (which must be in scope) and returns VLM_EBACKEND from the calling function. */
#define CUDA_TRY(expr)                                                                     \
    do {                                                                                   \
        cudaError_t e_ = (expr);                                                           \
        if (e_ != cudaSuccess) return cuda_fail(cx, __FILE__, __LINE__, #expr,             \
                                                cudaGetErrorString(e_));                   \
    } while (0)
#define CUBLAS_TRY(expr)                                                                   \
    do {                                                                                   \
        cublasStatus_t s_ = (expr);                                                        \
        if (s_ != CUBLAS_STATUS_SUCCESS) return cuda_fail(cx, __FILE__, __LINE__, #expr,  \
                                                          cublasGetStatusString(s_));      \
    } while (0)

/* fault codes written to *fault_dev by kernels */
enum { CUDA_FAULT_NONE = 0, CUDA_FAULT_GET_ROWS = 1, CUDA_FAULT_SET_ROWS = 2 };

/* Launchers, one per op family (matmul.cu, norm.cu, rope.cu, attention.cu, rows.cu,
 * sample.cu). */
int cuda_matmul(cuda_ctx *cx, cudaStream_t stream, const vlm_op *op);
int cuda_rms_norm(cuda_ctx *cx, cudaStream_t stream, const vlm_op *op);
int cuda_elementwise(cuda_ctx *cx, cudaStream_t stream, const vlm_op *op); /* add/swiglu/gelu */
int cuda_rope(cuda_ctx *cx, cudaStream_t stream, const vlm_op *op);
int cuda_attention(cuda_ctx *cx, cudaStream_t stream, const vlm_op *op);
int cuda_get_rows(cuda_ctx *cx, cudaStream_t stream, const vlm_op *op);
int cuda_set_rows(cuda_ctx *cx, cudaStream_t stream, const vlm_op *op);
int cuda_sample(cuda_ctx *cx, cudaStream_t stream, const vlm_op *op);

/* Whether the op family can run these shapes/dtypes (called by supports_op). */
bool cuda_matmul_supported(const cuda_ctx *cx, const vlm_op *op);
bool cuda_attention_supported(const vlm_op *op);
bool cuda_sample_supported(const vlm_op *op);

/* ---- helpers -------------------------------------------------------------------- */

static inline int64_t cuda_ncols(vlm_tensor t) {
    return vlm_tensor_row_numel(t);
}

static inline bool cuda_aligned16(const void *p) {
    return ((uintptr_t)p & 15u) == 0;
}

/* blocks of `threads` covering n items, capped for grid-stride loops */
static inline unsigned cuda_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535 * 16) b = 65535 * 16;
    return (unsigned)b;
}

/* element i of a weight vector stored as bf16 or f32 */
__device__ __forceinline__ float cuda_load_w(const void *w, bool bf16, int64_t i) {
    return bf16 ? __bfloat162float(((const __nv_bfloat16 *)w)[i]) : ((const float *)w)[i];
}

#endif
