/* backend.c — tensor helpers, backend selection and the checked op builders.
 *
 * The builders check every shape before handing an op to the backend, so a planning
 * mistake in model code becomes an error message naming the op, not a wild write.
 */
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

vlm_tensor vlm_tensor_make(vlm_dtype dtype, void *data, int ndim, const int64_t *ne) {
    vlm_tensor t = {.dtype = dtype, .ndim = ndim, .data = data};
    for (int i = 0; i < ndim && i < 4; i++) t.ne[i] = ne[i];
    return t;
}

vlm_tensor vlm_tensor_2d(vlm_dtype dtype, void *data, int64_t rows, int64_t cols) {
    int64_t ne[2] = {rows, cols};
    return vlm_tensor_make(dtype, data, 2, ne);
}

int64_t vlm_tensor_numel(vlm_tensor t) {
    int64_t n = 1;
    for (int i = 0; i < t.ndim; i++) n *= t.ne[i];
    return n;
}

size_t vlm_tensor_nbytes(vlm_tensor t) {
    return (size_t)vlm_tensor_numel(t) * vlm__dtype_size(t.dtype);
}

int64_t vlm_tensor_row_numel(vlm_tensor t) {
    int64_t n = 1;
    for (int i = 1; i < t.ndim; i++) n *= t.ne[i];
    return n;
}

vlm_tensor vlm_tensor_rows(vlm_tensor t, int64_t first, int64_t n) {
    vlm_tensor v = t;
    v.ne[0] = n;
    v.data = (char *)t.data + (size_t)first * (size_t)vlm_tensor_row_numel(t) *
                                  vlm__dtype_size(t.dtype);
    return v;
}

vlm_tensor vlm_tensor_reshape2(vlm_tensor t, int64_t rows, int64_t cols) {
    return vlm_tensor_2d(t.dtype, t.data, rows, cols);
}

const char *vlm_op_name(vlm_op_kind kind) {
    static const char *names[VLM_OP_COUNT] = {
        [VLM_OP_MATMUL] = "matmul",     [VLM_OP_RMS_NORM] = "rms_norm",
        [VLM_OP_ADD] = "add",           [VLM_OP_SWIGLU] = "swiglu",
        [VLM_OP_GELU] = "gelu",         [VLM_OP_ROPE] = "rope",
        [VLM_OP_ATTENTION] = "attention", [VLM_OP_GET_ROWS] = "get_rows",
        [VLM_OP_SET_ROWS] = "set_rows", [VLM_OP_SAMPLE] = "sample",
    };
    return (unsigned)kind < VLM_OP_COUNT ? names[kind] : "?";
}

int vlm_backend_new(const char *name, int n_threads, vlm_backend **out, char *err) {
    *out = NULL;
    if (!name || !*name) name = "cpu";
#ifdef VLM_HAVE_CUDA
    extern int vlm_backend_cuda_new(int device, vlm_backend **out, char *err);
    if (strcmp(name, "cuda") == 0) return vlm_backend_cuda_new(0, out, err);
    if (strcmp(name, "auto") == 0) {
        char cerr[VLM_ERR_LEN];
        if (vlm_backend_cuda_new(0, out, cerr) == 0) return 0;
        vlm__log(VLM_LOG_WARN, "backend auto: no usable CUDA device (%s); using the cpu", cerr);
        name = "cpu";
    }
#else
    if (strcmp(name, "cuda") == 0)
        return vlm__errf(err, VLM_EUNSUPPORTED,
                         "backend 'cuda': this build has no CUDA support (nvcc was not found "
                         "when it was built)");
    if (strcmp(name, "auto") == 0) {
        vlm__log(VLM_LOG_INFO, "backend auto: this build has no CUDA support; using the cpu");
        name = "cpu";
    }
#endif
    if (strcmp(name, "cpu") != 0)
        return vlm__errf(err, VLM_EINVAL, "backend '%s': unknown (want cpu, cuda or auto)", name);
    *out = vlm_backend_cpu_new(n_threads);
    if (!*out) return vlm__errf(err, VLM_ENOMEM, "backend 'cpu': out of memory");
    return 0;
}

void vlm_backend_free(vlm_backend *be) {
    if (be) be->iface->free(be);
}

void *vlm_backend_alloc(vlm_backend *be, size_t size) {
    return be->iface->alloc(be, size ? size : 1);
}

void vlm_backend_free_buffer(vlm_backend *be, void *ptr) {
    if (ptr) be->iface->free_buffer(be, ptr);
}

int vlm_backend_set(vlm_backend *be, vlm_tensor dst, const void *src) {
    return be->iface->set(be, dst.data, src, vlm_tensor_nbytes(dst));
}

int vlm_backend_get(vlm_backend *be, void *dst, vlm_tensor src) {
    return be->iface->get(be, dst, src.data, vlm_tensor_nbytes(src));
}

int vlm_backend_synchronize(vlm_backend *be) {
    return be->iface->synchronize(be);
}

int vlm_backend_graph_begin(vlm_backend *be, int64_t key) {
    return be->iface->graph_begin ? be->iface->graph_begin(be, key) : 0;
}

int vlm_backend_graph_end(vlm_backend *be, bool abort) {
    return be->iface->graph_end ? be->iface->graph_end(be, abort) : 0;
}

const char *vlm_backend_last_error(vlm_backend *be) {
    return be->iface->last_error(be);
}

int vlm_backend_compute(vlm_backend *be, const vlm_op *op) {
    if (!be->iface->supports_op(be, op)) {
        vlm__log(VLM_LOG_ERROR, "backend %s: op %s unsupported for these dtypes/shapes",
                 be->iface->name, vlm_op_name(op->kind));
        return VLM_EUNSUPPORTED;
    }
    return be->iface->compute(be, op);
}

/* Shape checks: a failed check is a bug in the model code's plan, reported loudly. */
static int shape_error(const char *op, const char *what) {
    vlm__log(VLM_LOG_ERROR, "op %s: bad shapes: %s", op, what);
    return VLM_EINVAL;
}

#define CHECK_SHAPE(cond, op)                                                              \
    do {                                                                                   \
        if (!(cond)) return shape_error(op, #cond);                                        \
    } while (0)

static int64_t cols_of(vlm_tensor t) {
    return vlm_tensor_row_numel(t);
}

int vlm_matmul(vlm_backend *be, vlm_tensor out, vlm_tensor x, vlm_tensor w, const vlm_tensor *b) {
    CHECK_SHAPE(cols_of(x) == cols_of(w), "matmul");
    CHECK_SHAPE(out.ne[0] == x.ne[0] && cols_of(out) == w.ne[0], "matmul");
    CHECK_SHAPE(!b || vlm_tensor_numel(*b) == w.ne[0], "matmul");
    vlm_op op = {.kind = VLM_OP_MATMUL, .out = out, .src = {x, w}};
    if (b) op.src[2] = *b;
    return vlm_backend_compute(be, &op);
}

int vlm_rms_norm(vlm_backend *be, vlm_tensor out, vlm_tensor x, vlm_tensor w, float eps) {
    CHECK_SHAPE(vlm_tensor_numel(out) == vlm_tensor_numel(x), "rms_norm");
    CHECK_SHAPE(vlm_tensor_numel(w) == cols_of(x), "rms_norm");
    vlm_op op = {.kind = VLM_OP_RMS_NORM, .out = out, .src = {x, w}, .p.rms_norm.eps = eps};
    return vlm_backend_compute(be, &op);
}

int vlm_add(vlm_backend *be, vlm_tensor out, vlm_tensor a, vlm_tensor b) {
    CHECK_SHAPE(vlm_tensor_numel(out) == vlm_tensor_numel(a), "add");
    CHECK_SHAPE(vlm_tensor_numel(a) == vlm_tensor_numel(b), "add");
    vlm_op op = {.kind = VLM_OP_ADD, .out = out, .src = {a, b}};
    return vlm_backend_compute(be, &op);
}

int vlm_swiglu(vlm_backend *be, vlm_tensor out, vlm_tensor gate, vlm_tensor up) {
    CHECK_SHAPE(vlm_tensor_numel(out) == vlm_tensor_numel(gate), "swiglu");
    CHECK_SHAPE(vlm_tensor_numel(gate) == vlm_tensor_numel(up), "swiglu");
    vlm_op op = {.kind = VLM_OP_SWIGLU, .out = out, .src = {gate, up}};
    return vlm_backend_compute(be, &op);
}

int vlm_gelu(vlm_backend *be, vlm_tensor out, vlm_tensor x) {
    CHECK_SHAPE(vlm_tensor_numel(out) == vlm_tensor_numel(x), "gelu");
    vlm_op op = {.kind = VLM_OP_GELU, .out = out, .src = {x}};
    return vlm_backend_compute(be, &op);
}

int vlm_rope(vlm_backend *be, vlm_tensor out, vlm_tensor x, vlm_tensor cos, vlm_tensor sin) {
    CHECK_SHAPE(x.ndim == 3 && out.ndim == 3, "rope");
    CHECK_SHAPE(vlm_tensor_numel(out) == vlm_tensor_numel(x), "rope");
    CHECK_SHAPE(cos.ne[0] == x.ne[0] && sin.ne[0] == x.ne[0], "rope");
    CHECK_SHAPE(cols_of(cos) * 2 == x.ne[2] && cols_of(sin) * 2 == x.ne[2], "rope");
    vlm_op op = {.kind = VLM_OP_ROPE, .out = out, .src = {x, cos, sin}};
    return vlm_backend_compute(be, &op);
}

int vlm_attention(vlm_backend *be, vlm_tensor out, vlm_tensor q, vlm_tensor k, vlm_tensor v,
                  const vlm_tensor *seg, int64_t n_head, int64_t n_kv_head, int64_t head_dim) {
    CHECK_SHAPE(n_kv_head > 0 && n_head % n_kv_head == 0, "attention");
    CHECK_SHAPE(cols_of(q) == n_head * head_dim && cols_of(out) == n_head * head_dim,
                "attention");
    CHECK_SHAPE(cols_of(k) == n_kv_head * head_dim && cols_of(v) == n_kv_head * head_dim,
                "attention");
    CHECK_SHAPE(out.ne[0] == q.ne[0] && k.ne[0] == v.ne[0] && q.ne[0] <= k.ne[0], "attention");
    CHECK_SHAPE(!seg || q.ne[0] == k.ne[0], "attention");
    vlm_op op = {.kind = VLM_OP_ATTENTION, .out = out, .src = {q, k, v}};
    if (seg) op.src[3] = *seg;
    op.p.attention.n_head = n_head;
    op.p.attention.n_kv_head = n_kv_head;
    op.p.attention.head_dim = head_dim;
    op.p.attention.scale = 1.0f / sqrtf((float)head_dim);
    return vlm_backend_compute(be, &op);
}

int vlm_get_rows(vlm_backend *be, vlm_tensor out, vlm_tensor src, vlm_tensor idx) {
    CHECK_SHAPE(idx.dtype == VLM_I32 && out.ne[0] == vlm_tensor_numel(idx), "get_rows");
    CHECK_SHAPE(cols_of(out) == cols_of(src), "get_rows");
    vlm_op op = {.kind = VLM_OP_GET_ROWS, .out = out, .src = {src, idx}};
    return vlm_backend_compute(be, &op);
}

int vlm_set_rows(vlm_backend *be, vlm_tensor out, vlm_tensor src, vlm_tensor idx) {
    CHECK_SHAPE(idx.dtype == VLM_I32 && src.ne[0] == vlm_tensor_numel(idx), "set_rows");
    CHECK_SHAPE(cols_of(out) == cols_of(src), "set_rows");
    vlm_op op = {.kind = VLM_OP_SET_ROWS, .out = out, .src = {src, idx}};
    return vlm_backend_compute(be, &op);
}

int vlm_sample(vlm_backend *be, vlm_tensor out, vlm_tensor logits, const vlm_tensor *seen,
               bool greedy, int32_t top_k, float temperature, float top_p, float penalty,
               double u) {
    CHECK_SHAPE(out.dtype == VLM_I32 && vlm_tensor_numel(out) == 1, "sample");
    CHECK_SHAPE(logits.ne[0] == 1 && cols_of(logits) >= 1 && cols_of(logits) <= INT32_MAX,
                "sample");
    CHECK_SHAPE(!seen || (seen->dtype == VLM_U8 && vlm_tensor_numel(*seen) == cols_of(logits)),
                "sample");
    CHECK_SHAPE(greedy || (top_k >= 1 && top_k <= VLM_SAMPLE_MAX_CANDIDATES), "sample");
    CHECK_SHAPE(greedy || (temperature > 0 && top_p > 0 && top_p <= 1), "sample");
    CHECK_SHAPE(u >= 0 && u < 1 && penalty > 0, "sample");
    vlm_op op = {.kind = VLM_OP_SAMPLE, .out = out, .src = {logits}};
    if (seen) op.src[1] = *seen;
    op.p.sample.greedy = greedy;
    op.p.sample.top_k = top_k;
    op.p.sample.temperature = temperature;
    op.p.sample.top_p = top_p;
    op.p.sample.penalty = penalty;
    op.p.sample.u = u;
    return vlm_backend_compute(be, &op);
}
