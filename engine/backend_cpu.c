/* backend_cpu.c — the CPU backend: the numerical reference for every op.
 *
 * Plain f32 math; weights are held as f32 (the loader widens BF16/F16 files).  GEMMs go
 * to single-threaded OpenBLAS (cblas_sgemm/sgemv) on slices of the output features, one
 * slice per OpenMP thread; everything else is a plain loop parallelised with OpenMP over
 * rows or (row, head) pairs.  Attention uses an online softmax per (query, head)
 * so it needs no scratch memory at all; nothing here allocates after creation.
 * Thread: one caller at a time (the inference thread that owns the model).
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"

typedef struct cpu_ctx {
    int n_threads;
    char last_error[VLM_ERR_LEN];
} cpu_ctx;

static cpu_ctx *ctx_of(vlm_backend *be) {
    return be->ctx;
}

static int cpu_fail(vlm_backend *be, int code, const char *fmt, const char *arg) {
    snprintf(ctx_of(be)->last_error, VLM_ERR_LEN, fmt, arg);
    vlm__log(VLM_LOG_ERROR, "backend cpu: %s", ctx_of(be)->last_error);
    return code;
}

static float *f32(vlm_tensor t) {
    return (float *)t.data;
}

static int64_t ncols(vlm_tensor t) {
    return vlm_tensor_row_numel(t);
}

/* out[n,m] = x[n,k] · w[m,k]ᵀ (+ b[m]) */
static int cpu_matmul(vlm_backend *be, const vlm_op *op) {
    vlm_tensor x = op->src[0], w = op->src[1], b = op->src[2], out = op->out;
    int64_t n = x.ne[0], k = ncols(x), m = w.ne[0];
    int nt = ctx_of(be)->n_threads;
    /* Each thread computes a slice of the output features with single-threaded
     * OpenBLAS: one thread pool (OpenMP) for everything, so OpenBLAS' own spinning
     * threads never fight OpenMP's (that cost 8x on decode on 2 cores). */
#pragma omp parallel for num_threads(nt) schedule(static) if (n * m * k > (1 << 16))
    for (int t = 0; t < nt; t++) {
        int64_t m0 = m * t / nt, m1 = m * (t + 1) / nt;
        if (m1 <= m0) continue;
        const float *wt = f32(w) + m0 * k;
        if (n == 1) /* decode: a matrix-vector product streams the weights once */
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)(m1 - m0), (int)k, 1.0f, wt, (int)k,
                        f32(x), 1, 0.0f, f32(out) + m0, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)(m1 - m0), (int)k,
                        1.0f, f32(x), (int)k, wt, (int)k, 0.0f, f32(out) + m0, (int)m);
    }
    if (b.data) {
        const float *bias = f32(b);
        float *o = f32(out);
#pragma omp parallel for num_threads(ctx_of(be)->n_threads) schedule(static) if (n * m > 65536)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < m; j++) o[i * m + j] += bias[j];
    }
    return 0;
}

/* out[i,:] = x[i,:] / sqrt(mean(x[i,:]²) + eps) * w */
static int cpu_rms_norm(vlm_backend *be, const vlm_op *op) {
    vlm_tensor x = op->src[0];
    const float *w = f32(op->src[1]);
    int64_t n = x.ne[0], d = ncols(x);
    float eps = op->p.rms_norm.eps;
#pragma omp parallel for num_threads(ctx_of(be)->n_threads) schedule(static) if (n > 16)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = f32(x) + i * d;
        float *oi = f32(op->out) + i * d;
        double ss = 0.0;
        for (int64_t j = 0; j < d; j++) ss += (double)xi[j] * xi[j];
        float r = 1.0f / sqrtf((float)(ss / (double)d) + eps);
        for (int64_t j = 0; j < d; j++) oi[j] = w[j] * (xi[j] * r);
    }
    return 0;
}

static int cpu_elementwise(vlm_backend *be, const vlm_op *op) {
    int64_t n = vlm_tensor_numel(op->out);
    const float *a = f32(op->src[0]), *b = op->src[1].data ? f32(op->src[1]) : NULL;
    float *o = f32(op->out);
    vlm_op_kind kind = op->kind;
#pragma omp parallel for num_threads(ctx_of(be)->n_threads) schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float v = a[i];
        switch (kind) {
        case VLM_OP_ADD: o[i] = v + b[i]; break;
        case VLM_OP_SWIGLU: o[i] = v / (1.0f + expf(-v)) * b[i]; break;
        case VLM_OP_GELU: o[i] = 0.5f * v * (1.0f + erff(v * (float)M_SQRT1_2)); break;
        default: break;
        }
    }
    return 0;
}

/* rotate-half RoPE: pairs (j, j + d/2) rotated by the angle whose cos/sin are given */
static int cpu_rope(vlm_backend *be, const vlm_op *op) {
    vlm_tensor x = op->src[0];
    int64_t n = x.ne[0], heads = x.ne[1], d = x.ne[2], half = d / 2;
    const float *cs = f32(op->src[1]), *sn = f32(op->src[2]);
#pragma omp parallel for num_threads(ctx_of(be)->n_threads) schedule(static) if (n > 16)
    for (int64_t i = 0; i < n; i++) {
        for (int64_t h = 0; h < heads; h++) {
            const float *xi = f32(x) + (i * heads + h) * d;
            float *oi = f32(op->out) + (i * heads + h) * d;
            for (int64_t j = 0; j < half; j++) {
                float c = cs[i * half + j], s = sn[i * half + j];
                float x0 = xi[j], x1 = xi[j + half];
                oi[j] = x0 * c - x1 * s;
                oi[j + half] = x1 * c + x0 * s;
            }
        }
    }
    return 0;
}

/* softmax(q·kᵀ·scale)·v for one (query row, head), online (running max and sum). */
static void attend_one(float *out, const float *q, const float *k, const float *v,
                       int64_t k_stride, int64_t lo, int64_t hi, int64_t d, float scale) {
    float acc[512];
    float m = -INFINITY, l = 0.0f;
    for (int64_t j = 0; j < d; j++) acc[j] = 0.0f;
    for (int64_t t = lo; t < hi; t++) {
        const float *kt = k + t * k_stride, *vt = v + t * k_stride;
        float s = 0.0f;
        for (int64_t j = 0; j < d; j++) s += q[j] * kt[j];
        s *= scale;
        if (s > m) {
            float c = expf(m - s);
            l *= c;
            for (int64_t j = 0; j < d; j++) acc[j] *= c;
            m = s;
        }
        float p = expf(s - m);
        l += p;
        for (int64_t j = 0; j < d; j++) acc[j] += p * vt[j];
    }
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (int64_t j = 0; j < d; j++) out[j] = acc[j] * inv;
}

static int cpu_attention(vlm_backend *be, const vlm_op *op) {
    vlm_tensor q = op->src[0], k = op->src[1], v = op->src[2], seg = op->src[3];
    int64_t nq = q.ne[0], nk = k.ne[0];
    int64_t H = op->p.attention.n_head, KVH = op->p.attention.n_kv_head;
    int64_t d = op->p.attention.head_dim, group = H / KVH;
    float scale = op->p.attention.scale;
    if (d > 512) return cpu_fail(be, VLM_EUNSUPPORTED, "attention: head_dim %s > 512", "");
    const int32_t *cu = seg.data ? (const int32_t *)seg.data : NULL;
    int64_t nseg = seg.data ? vlm_tensor_numel(seg) - 1 : 0;
#pragma omp parallel for num_threads(ctx_of(be)->n_threads) schedule(dynamic, 4)
    for (int64_t ih = 0; ih < nq * H; ih++) {
        int64_t i = ih / H, h = ih % H, kvh = h / group;
        int64_t lo = 0, hi = nk - nq + i + 1;
        if (cu) { /* the segment holding row i */
            for (int64_t s = 0; s < nseg; s++)
                if (i >= cu[s] && i < cu[s + 1]) {
                    lo = cu[s];
                    hi = cu[s + 1];
                    break;
                }
        }
        attend_one(f32(op->out) + (i * H + h) * d, f32(q) + (i * H + h) * d,
                   f32(k) + kvh * d, f32(v) + kvh * d, KVH * d, lo, hi, d, scale);
    }
    return 0;
}

static int cpu_get_rows(vlm_backend *be, const vlm_op *op) {
    vlm_tensor src = op->src[0];
    const int32_t *idx = op->src[1].data;
    int64_t n = op->out.ne[0], d = ncols(src), rows = src.ne[0];
    size_t es = vlm__dtype_size(src.dtype);
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= rows) {
            char msg[64];
            snprintf(msg, sizeof msg, "%d of %lld", idx[i], (long long)rows);
            return cpu_fail(be, VLM_ERANGE, "get_rows: row index %s out of range", msg);
        }
#pragma omp parallel for num_threads(ctx_of(be)->n_threads) schedule(static) if (n * d > 65536)
    for (int64_t i = 0; i < n; i++)
        vlm__to_f32(f32(op->out) + i * d, (const char *)src.data + (size_t)idx[i] * d * es,
                    src.dtype, d);
    return 0;
}

static int cpu_set_rows(vlm_backend *be, const vlm_op *op) {
    vlm_tensor src = op->src[0];
    const int32_t *idx = op->src[1].data;
    int64_t n = src.ne[0], d = ncols(src), rows = op->out.ne[0];
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= rows) {
            char msg[64];
            snprintf(msg, sizeof msg, "%d of %lld", idx[i], (long long)rows);
            return cpu_fail(be, VLM_ERANGE, "set_rows: row index %s out of range", msg);
        }
        memmove(f32(op->out) + (size_t)idx[i] * d, f32(src) + i * d, (size_t)d * 4);
    }
    return 0;
}

static bool cpu_supports_op(vlm_backend *be, const vlm_op *op) {
    (void)be;
    if (op->out.dtype != VLM_F32) return false;
    switch (op->kind) {
    case VLM_OP_GET_ROWS:
        return op->src[0].dtype == VLM_F32 || op->src[0].dtype == VLM_BF16 ||
               op->src[0].dtype == VLM_F16;
    case VLM_OP_SET_ROWS: return op->src[0].dtype == VLM_F32;
    default:
        for (int i = 0; i < 3; i++)
            if (op->src[i].data && op->src[i].dtype != VLM_F32) return false;
        return op->kind < VLM_OP_COUNT;
    }
}

static int cpu_compute(vlm_backend *be, const vlm_op *op) {
    switch (op->kind) {
    case VLM_OP_MATMUL: return cpu_matmul(be, op);
    case VLM_OP_RMS_NORM: return cpu_rms_norm(be, op);
    case VLM_OP_ADD:
    case VLM_OP_SWIGLU:
    case VLM_OP_GELU: return cpu_elementwise(be, op);
    case VLM_OP_ROPE: return cpu_rope(be, op);
    case VLM_OP_ATTENTION: return cpu_attention(be, op);
    case VLM_OP_GET_ROWS: return cpu_get_rows(be, op);
    case VLM_OP_SET_ROWS: return cpu_set_rows(be, op);
    case VLM_OP_COUNT: break;
    }
    return cpu_fail(be, VLM_EUNSUPPORTED, "op %s unknown", vlm_op_name(op->kind));
}

static void *cpu_alloc(vlm_backend *be, size_t size) {
    (void)be;
    void *p = NULL;
    if (posix_memalign(&p, 64, size) != 0) return NULL;
    return p;
}

static void cpu_free_buffer(vlm_backend *be, void *ptr) {
    (void)be;
    free(ptr);
}

static int cpu_copy(vlm_backend *be, void *dst, const void *src, size_t n) {
    (void)be;
    memcpy(dst, src, n);
    return 0;
}

static int cpu_synchronize(vlm_backend *be) {
    (void)be;
    return 0;
}

static const char *cpu_last_error(vlm_backend *be) {
    return ctx_of(be)->last_error;
}

static void cpu_free(vlm_backend *be) {
    free(be->ctx);
    free(be);
}

static const vlm_backend_i cpu_iface = {
    .name = "cpu",
    .weight_dtype = VLM_F32,
    .free = cpu_free,
    .alloc = cpu_alloc,
    .free_buffer = cpu_free_buffer,
    .set = cpu_copy,
    .get = cpu_copy,
    .supports_op = cpu_supports_op,
    .compute = cpu_compute,
    .synchronize = cpu_synchronize,
    .last_error = cpu_last_error,
};

vlm_backend *vlm_backend_cpu_new(int n_threads) {
    vlm_backend *be = calloc(1, sizeof *be);
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return NULL;
    }
    if (n_threads <= 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = nc > 0 ? (int)nc : 1;
    }
    c->n_threads = n_threads;
    openblas_set_num_threads(1); /* threads come from OpenMP: see cpu_matmul */
    be->iface = &cpu_iface;
    be->ctx = c;
    return be;
}
