/* backend.h — the one interface between the model code and the hardware that runs it.
 *
 * The model (vision.c, llm.c) is written as a planned sequence of op calls on tensors
 * that live in backend memory; a backend (backend_cpu.c, cuda/) implements the ops.
 * There is no graph and no scheduler: each vlm_backend_compute() runs one op, in order.
 * The CPU backend is the numerical reference (f32 math); the CUDA backend stores
 * weights as bf16 and accumulates in f32.
 *
 * Invariants:
 *   - tensors are contiguous, row-major, at most 4 dims, outermost first: a tensor of
 *     shape [n, k] has row i at data + i*k*elem_size.  Views take whole rows.
 *   - all memory is allocated up front (model load, context creation) with
 *     vlm_backend_alloc; no op allocates.
 *   - an op's output never aliases its inputs unless the op says so (ROPE, ADD may run
 *     in place).
 * Not for: anything that knows about tokens, prompts or the model's structure.
 */
#ifndef VLM_BACKEND_H
#define VLM_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "vlm_util.h"

typedef struct vlm_tensor {
    vlm_dtype dtype;
    int ndim;
    int64_t ne[4]; /* shape, outermost first */
    void *data;    /* backend memory: a host pointer on the CPU, a device pointer on CUDA */
} vlm_tensor;

/* A tensor of shape ne (ndim dims) at data. */
vlm_tensor vlm_tensor_make(vlm_dtype dtype, void *data, int ndim, const int64_t *ne);
vlm_tensor vlm_tensor_2d(vlm_dtype dtype, void *data, int64_t rows, int64_t cols);
int64_t vlm_tensor_numel(vlm_tensor t);
size_t vlm_tensor_nbytes(vlm_tensor t);
int64_t vlm_tensor_row_numel(vlm_tensor t); /* elements per outermost index */
/* Rows [first, first+n) of t (outermost dim), same inner shape. */
vlm_tensor vlm_tensor_rows(vlm_tensor t, int64_t first, int64_t n);
/* The same memory seen as [rows, cols] (rows*cols must equal numel). */
vlm_tensor vlm_tensor_reshape2(vlm_tensor t, int64_t rows, int64_t cols);

/* Most candidates VLM_OP_SAMPLE draws from: top-k runs on the backend for k up to this
 * (a device block sorts them); larger k, or no top-k, samples on the host. */
#define VLM_SAMPLE_MAX_CANDIDATES 1024

typedef enum vlm_op_kind {
    VLM_OP_MATMUL,    /* out[n,m] = x[n,k] · w[m,k]ᵀ (+ b[m]); src = {x, w, b or none} */
    VLM_OP_RMS_NORM,  /* out[i,:] = x[i,:] / sqrt(mean(x[i,:]²) + eps) * w; src = {x, w} */
    VLM_OP_ADD,       /* out = a + b (out may be a); src = {a, b} */
    VLM_OP_SWIGLU,    /* out = silu(gate) * up; src = {gate, up} */
    VLM_OP_GELU,      /* out = x * (1 + erf(x / √2)) / 2, exact; src = {x} */
    VLM_OP_ROPE,      /* rotate-half: out[i,h,j] = x·cos − x[j±d/2]·sin; src = {x, cos, sin};
                         x, out [n, heads, d]; cos, sin [n, d/2] f32 (angle j and j+d/2 equal);
                         out may be x */
    VLM_OP_ATTENTION, /* out = softmax(q·kᵀ·scale)·v per head, GQA; src = {q, k, v, seg};
                         q, out [nq, H, d]; k, v [nk, KVH, d].  Without seg: causal,
                         aligned bottom-right (query i sees keys 0 … nk−nq+i).  With seg
                         (i32 [nseg+1] row boundaries, nq == nk): bidirectional inside
                         each segment. */
    VLM_OP_GET_ROWS,  /* out[i,:] = src[idx[i],:] converted to out's dtype; src = {src, idx i32} */
    VLM_OP_SET_ROWS,  /* out[idx[i],:] = src[i,:]; src = {src, idx i32}; out is updated */
    VLM_OP_SAMPLE,    /* out i32 [1] = the next token from the logits row src[0] ([1, V] f32,
                         left as it is), drawn as engine/sampler.h draws: repetition
                         penalty on the ids marked in src[1] (u8 [V], or none), temperature,
                         top-k (ties at the k-th value kept), top-p, then the draw at p.u;
                         greedy: argmax after the penalty, lowest id on ties.  The drawn
                         id is then marked in src[1].  When more than
                         VLM_SAMPLE_MAX_CANDIDATES ids reach the k-th value, out is -1 and
                         nothing is marked: the caller draws on the host.  src = {logits,
                         seen or none} */
    VLM_OP_COUNT
} vlm_op_kind;

typedef struct vlm_op {
    vlm_op_kind kind;
    vlm_tensor out;
    vlm_tensor src[4]; /* unused slots have data == NULL */
    union {
        struct {
            float eps;
        } rms_norm;
        struct {
            int64_t n_head, n_kv_head, head_dim;
            float scale;
        } attention;
        struct {
            bool greedy;
            int32_t top_k;       /* 1 … VLM_SAMPLE_MAX_CANDIDATES unless greedy */
            float temperature, top_p, penalty;
            double u;            /* the draw, uniform in [0, 1) */
        } sample;
    } p;
} vlm_op;

const char *vlm_op_name(vlm_op_kind kind);

typedef struct vlm_backend vlm_backend;

/* What every backend implements.  Members return 0 or a negative VLM_E* code; on
 * failure the backend keeps a message for last_error. */
typedef struct vlm_backend_i {
    const char *name;
    /* dtype the backend wants weights in (F32 for the CPU reference, BF16 on CUDA) */
    vlm_dtype weight_dtype;
    /* release everything the backend owns (its buffers must have been freed) */
    void (*free)(vlm_backend *be);
    /* allocate `size` bytes of backend memory (one planned buffer); NULL on failure */
    void *(*alloc)(vlm_backend *be, size_t size);
    /* free memory from alloc (NULL is a no-op) */
    void (*free_buffer)(vlm_backend *be, void *ptr);
    /* copy n bytes from host src into backend memory at dst */
    int (*set)(vlm_backend *be, void *dst, const void *src, size_t n);
    /* copy n bytes from backend memory src into host dst (waits for pending ops) */
    int (*get)(vlm_backend *be, void *dst, const void *src, size_t n);
    /* whether this backend can run op (dtypes and shapes as given) */
    bool (*supports_op)(vlm_backend *be, const vlm_op *op);
    /* run one op (may be asynchronous on devices) */
    int (*compute)(vlm_backend *be, const vlm_op *op);
    /* wait until every op issued so far has finished */
    int (*synchronize)(vlm_backend *be);
    /* the message of the last failure, or "" */
    const char *(*last_error)(vlm_backend *be);
    /* optional (NULL: ops always run as issued).  Between graph_begin and graph_end the
     * ops issued are recorded, not run; graph_end runs them as one graph, or discards
     * them when abort is set.  key names the shape of the recorded step (the same key,
     * the same sequence of ops with other sizes and addresses), so the backend can
     * update a graph it made before instead of building one.  No set/get in between.
     * graph_end returns VLM_EAGAIN when no graph could be made of the recording: nothing
     * of it ran, the backend stops recording from then on, and the caller issues the
     * step again op by op. */
    int (*graph_begin)(vlm_backend *be, int64_t key);
    int (*graph_end)(vlm_backend *be, bool abort);
} vlm_backend_i;

struct vlm_backend {
    const vlm_backend_i *iface;
    void *ctx; /* the backend's own state */
};

/* Create a backend by name: "cpu", "cuda" (when built with CUDA) or "auto" (CUDA when a
 * device is usable, else the CPU with a log warning).  n_threads <= 0: all cores. */
int vlm_backend_new(const char *name, int n_threads, vlm_backend **out, char *err);
void vlm_backend_free(vlm_backend *be);

vlm_backend *vlm_backend_cpu_new(int n_threads);

/* Thin wrappers over the vtable (argument checks included). */
int vlm_backend_compute(vlm_backend *be, const vlm_op *op);
void *vlm_backend_alloc(vlm_backend *be, size_t size);
void vlm_backend_free_buffer(vlm_backend *be, void *ptr);
int vlm_backend_set(vlm_backend *be, vlm_tensor dst, const void *src);
int vlm_backend_get(vlm_backend *be, void *dst, vlm_tensor src);
const char *vlm_backend_last_error(vlm_backend *be);
/* Wait until every op issued so far has finished (stage timings on a device). */
int vlm_backend_synchronize(vlm_backend *be);
/* Record the ops of one step as a graph (see graph_begin); no-ops on a backend without
 * graphs.  Every graph_begin that succeeded must be matched by a graph_end. */
int vlm_backend_graph_begin(vlm_backend *be, int64_t key);
int vlm_backend_graph_end(vlm_backend *be, bool abort);

/* One-line op builders used by the model code: each runs the op and returns its code. */
int vlm_matmul(vlm_backend *be, vlm_tensor out, vlm_tensor x, vlm_tensor w, const vlm_tensor *b);
int vlm_rms_norm(vlm_backend *be, vlm_tensor out, vlm_tensor x, vlm_tensor w, float eps);
int vlm_add(vlm_backend *be, vlm_tensor out, vlm_tensor a, vlm_tensor b);
int vlm_swiglu(vlm_backend *be, vlm_tensor out, vlm_tensor gate, vlm_tensor up);
int vlm_gelu(vlm_backend *be, vlm_tensor out, vlm_tensor x);
int vlm_rope(vlm_backend *be, vlm_tensor out, vlm_tensor x, vlm_tensor cos, vlm_tensor sin);
int vlm_attention(vlm_backend *be, vlm_tensor out, vlm_tensor q, vlm_tensor k, vlm_tensor v,
                  const vlm_tensor *seg, int64_t n_head, int64_t n_kv_head, int64_t head_dim);
int vlm_get_rows(vlm_backend *be, vlm_tensor out, vlm_tensor src, vlm_tensor idx);
int vlm_set_rows(vlm_backend *be, vlm_tensor out, vlm_tensor src, vlm_tensor idx);
/* The next token from one logits row (see VLM_OP_SAMPLE); seen may be NULL.  The
 * parameters are those of op.p.sample. */
int vlm_sample(vlm_backend *be, vlm_tensor out, vlm_tensor logits, const vlm_tensor *seen,
               bool greedy, int32_t top_k, float temperature, float top_p, float penalty,
               double u);

#endif
