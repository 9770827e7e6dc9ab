/* backend_cpu.c — the CPU backend: the numerical reference for every op.
 *
 * Plain f32 math; weights are held as f32 (the loader widens BF16/F16 files).  GEMMs go
 * to single-threaded OpenBLAS (cblas_sgemm/sgemv) on slices of the output features, one
 * slice per pool thread; attention is flash attention on tiles of query rows with
 * single-threaded GEMMs inside (see its section); everything else is a plain loop split
 * over rows.  Nothing here allocates after creation (the attention tiles' scratch is
 * planned with the pool).
 * The pool's workers block on a condition variable between ops: spinning workers (as
 * OpenMP's and OpenBLAS' do) starve the daemon's GStreamer and loop threads on a small
 * machine — a 20x latency collapse with one stream on 2 cores.
 * A failpoint for tests of what a device fault does to the daemon: with
 * VLM_CPU_FAULT_AFTER=N in the environment, the op after the first N fails, and from
 * then on every op, copy and synchronize fails with VLM_EBACKEND, as a CUDA backend
 * does after an error mid-stream.
 * Thread: one caller at a time (the inference thread that owns the model).
 */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "sampler.h"

#define CPU_MAX_THREADS 64

/* A task runs as fn(arg, t, nt) on each of nt threads; t = 0 is the caller. */
typedef void (*cpu_task)(const void *arg, int t, int nt);

typedef struct cpu_ctx cpu_ctx;
typedef struct worker_arg {
    cpu_ctx *c;
    int t;
} worker_arg;

struct cpu_ctx {
    int n_threads;
    char last_error[VLM_ERR_LEN];
    float *att_scratch;    /* attention tiles: ATT_SCRATCH floats per thread */
    int64_t fault_after;   /* ops left before the injected fault; < 0: none */
    bool faulted;          /* the injected fault happened: everything fails */
    /* the pool */
    pthread_t workers[CPU_MAX_THREADS];
    int n_workers;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t generation;
    cpu_task fn;
    const void *arg;
    int remaining;
    bool stop;
    worker_arg args[CPU_MAX_THREADS];
};

static void *worker_main(void *p) {
    worker_arg *wa = p;
    cpu_ctx *c = wa->c;
    uint64_t seen = 0;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (c->generation == seen && !c->stop) pthread_cond_wait(&c->go, &c->mu);
        if (c->stop) break;
        seen = c->generation;
        cpu_task fn = c->fn;
        const void *arg = c->arg;
        pthread_mutex_unlock(&c->mu);
        fn(arg, wa->t, c->n_threads);
        pthread_mutex_lock(&c->mu);
        if (--c->remaining == 0) pthread_cond_signal(&c->done);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* Run fn on every thread (the caller is thread 0); small work runs on the caller alone. */
static void run_parallel(cpu_ctx *c, cpu_task fn, const void *arg, int64_t work) {
    if (c->n_threads == 1 || work < 32768) {
        fn(arg, 0, 1);
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->fn = fn;
    c->arg = arg;
    c->remaining = c->n_workers;
    c->generation++;
    pthread_cond_broadcast(&c->go);
    pthread_mutex_unlock(&c->mu);
    fn(arg, 0, c->n_threads);
    pthread_mutex_lock(&c->mu);
    while (c->remaining > 0) pthread_cond_wait(&c->done, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

/* [lo, hi) of n items for thread t of nt */
static void share(int64_t n, int t, int nt, int64_t *lo, int64_t *hi) {
    *lo = n * t / nt;
    *hi = n * (t + 1) / nt;
}

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

/* Up to this many rows of x, a matmul is matrix-vector products over L2-sized blocks of
 * weight rows rather than one sgemm (see matmul_task). */
#define SMALL_BATCH 4

/* out[n,m] = x[n,k] · w[m,k]ᵀ (+ b[m]): thread t computes output features [m0, m1) */
static void matmul_task(const void *p, int t, int nt) {
    const vlm_op *op = p;
    vlm_tensor x = op->src[0], w = op->src[1], b = op->src[2], out = op->out;
    int64_t n = x.ne[0], k = ncols(x), m = w.ne[0], m0, m1;
    share(m, t, nt, &m0, &m1);
    if (m1 <= m0) return;
    const float *wt = f32(w) + m0 * k;
    if (n == 1) { /* decode: a matrix-vector product streams the weights once */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)(m1 - m0), (int)k, 1.0f, wt, (int)k, f32(x),
                    1, 0.0f, f32(out) + m0, 1);
    } else if (n <= SMALL_BATCH) {
        /* a few rows (batched decode of several streams): sgemm would pack the whole
         * weight slice for each call; instead each block of weight rows, sized to stay in
         * L2, is read from memory once and multiplied by every row of x */
        int64_t rows = (int64_t)(128 * 1024 / sizeof(float)) / k;
        if (rows < 4) rows = 4;
        for (int64_t j = m0; j < m1; j += rows) {
            int64_t r = m1 - j < rows ? m1 - j : rows;
            for (int64_t i = 0; i < n; i++)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)r, (int)k, 1.0f, f32(w) + j * k,
                            (int)k, f32(x) + i * k, 1, 0.0f, f32(out) + i * m + j, 1);
        }
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)(m1 - m0), (int)k, 1.0f,
                    f32(x), (int)k, wt, (int)k, 0.0f, f32(out) + m0, (int)m);
    }
    if (b.data) {
        const float *bias = f32(b);
        float *o = f32(out);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = m0; j < m1; j++) o[i * m + j] += bias[j];
    }
}

static int cpu_matmul(vlm_backend *be, const vlm_op *op) {
    int64_t work = op->src[0].ne[0] * op->src[1].ne[0] * ncols(op->src[0]);
    run_parallel(ctx_of(be), matmul_task, op, work);
    return 0;
}

/* out[i,:] = x[i,:] / sqrt(mean(x[i,:]²) + eps) * w */
static void rms_norm_task(const void *p, int t, int nt) {
    const vlm_op *op = p;
    vlm_tensor x = op->src[0];
    const float *w = f32(op->src[1]);
    int64_t n = x.ne[0], d = ncols(x), lo, hi;
    float eps = op->p.rms_norm.eps;
    share(n, t, nt, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        const float *xi = f32(x) + i * d;
        float *oi = f32(op->out) + i * d;
        double ss = 0.0;
        for (int64_t j = 0; j < d; j++) ss += (double)xi[j] * xi[j];
        float r = 1.0f / sqrtf((float)(ss / (double)d) + eps);
        for (int64_t j = 0; j < d; j++) oi[j] = w[j] * (xi[j] * r);
    }
}

static int cpu_rms_norm(vlm_backend *be, const vlm_op *op) {
    run_parallel(ctx_of(be), rms_norm_task, op, vlm_tensor_numel(op->src[0]));
    return 0;
}

static void elementwise_task(const void *p, int t, int nt) {
    const vlm_op *op = p;
    int64_t n = vlm_tensor_numel(op->out), lo, hi;
    const float *a = f32(op->src[0]), *b = op->src[1].data ? f32(op->src[1]) : NULL;
    float *o = f32(op->out);
    share(n, t, nt, &lo, &hi);
    switch (op->kind) {
    case VLM_OP_ADD:
        for (int64_t i = lo; i < hi; i++) o[i] = a[i] + b[i];
        break;
    case VLM_OP_SWIGLU:
        for (int64_t i = lo; i < hi; i++) o[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
        break;
    case VLM_OP_GELU:
        for (int64_t i = lo; i < hi; i++)
            o[i] = 0.5f * a[i] * (1.0f + erff(a[i] * (float)M_SQRT1_2));
        break;
    default: break;
    }
}

static int cpu_elementwise(vlm_backend *be, const vlm_op *op) {
    run_parallel(ctx_of(be), elementwise_task, op, vlm_tensor_numel(op->out));
    return 0;
}

/* rotate-half RoPE: pairs (j, j + d/2) rotated by the angle whose cos/sin are given */
static void rope_task(const void *p, int t, int nt) {
    const vlm_op *op = p;
    vlm_tensor x = op->src[0];
    int64_t n = x.ne[0], heads = x.ne[1], d = x.ne[2], half = d / 2, lo, hi;
    const float *cs = f32(op->src[1]), *sn = f32(op->src[2]);
    share(n, t, nt, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
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
}

static int cpu_rope(vlm_backend *be, const vlm_op *op) {
    run_parallel(ctx_of(be), rope_task, op, vlm_tensor_numel(op->src[0]));
    return 0;
}

/* ---- attention ----
 * Flash attention on the CPU.  A unit of work is a tile of query rows: ATT_BQ rows of
 * one head, never across a segment boundary, or for a single query row (decode) up to
 * ATT_BQ heads of one KV head's group, which share the row's keys.  The
 * tile walks its keys in blocks of ATT_BK: S = Q·Kᵀ·scale is one GEMM, keys outside a
 * row's range are masked, each row's running max and sum (online softmax) rescale its
 * output once per block, and O += P·V is a second GEMM.  The per-thread scratch (S and
 * O) is planned at creation. */
#define ATT_BQ 32
#define ATT_BK 128
#define ATT_DMAX 512
#define ATT_SCRATCH (ATT_BQ * ATT_BK + ATT_BQ * ATT_DMAX) /* floats per thread */

/* [lo, hi) of the keys query row i sees: causal aligned bottom-right, or with segment
 * bounds cu[0..nseg] the whole segment holding i (a row in none stays causal). */
static void att_row_range(int64_t i, int64_t nq, int64_t nk, const int32_t *cu, int64_t nseg,
                          int64_t *lo, int64_t *hi) {
    *lo = 0;
    *hi = nk - nq + i + 1;
    for (int64_t s = 0; s < nseg; s++)
        if (i >= cu[s] && i < cu[s + 1]) {
            *lo = cu[s];
            *hi = cu[s + 1];
            return;
        }
}

/* out[r] = softmax(q[r]·kᵀ·scale over keys [lo[r], hi[r]))·v for m ≤ ATT_BQ rows; q and
 * out rows ldq floats apart, k and v rows ldk apart.  A row with no keys gets zeros. */
static void attend_rows(float *out, const float *q, int64_t ldq, int64_t m, const int64_t *lo,
                        const int64_t *hi, const float *k, const float *v, int64_t ldk,
                        int64_t d, float scale, float *scratch) {
    float *S = scratch, *O = scratch + ATT_BQ * ATT_BK;
    float mx[ATT_BQ], sum[ATT_BQ];
    int64_t k0 = lo[0], k1 = hi[0];
    for (int64_t r = 0; r < m; r++) {
        mx[r] = -INFINITY;
        sum[r] = 0.0f;
        k0 = lo[r] < k0 ? lo[r] : k0;
        k1 = hi[r] > k1 ? hi[r] : k1;
    }
    memset(O, 0, sizeof(float) * (size_t)(m * d));
    for (int64_t t0 = k0; t0 < k1; t0 += ATT_BK) {
        int64_t nb = k1 - t0 < ATT_BK ? k1 - t0 : ATT_BK;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)nb, (int)d, scale, q,
                    (int)ldq, k + t0 * ldk, (int)ldk, 0.0f, S, ATT_BK);
        for (int64_t r = 0; r < m; r++) {
            float *sr = S + r * ATT_BK, bmax = -INFINITY;
            for (int64_t j = 0; j < nb; j++) {
                if (t0 + j < lo[r] || t0 + j >= hi[r]) sr[j] = -INFINITY;
                bmax = sr[j] > bmax ? sr[j] : bmax;
            }
            if (bmax == -INFINITY) { /* no key of this block: P row zero */
                memset(sr, 0, sizeof(float) * (size_t)nb);
                continue;
            }
            float mnew = bmax > mx[r] ? bmax : mx[r], ps = 0.0f;
            if (mnew > mx[r]) { /* the row's earlier terms, rescaled to the new max */
                float c = expf(mx[r] - mnew);
                sum[r] *= c;
                for (int64_t j = 0; j < d; j++) O[r * d + j] *= c;
                mx[r] = mnew;
            }
            for (int64_t j = 0; j < nb; j++) ps += (sr[j] = expf(sr[j] - mnew));
            sum[r] += ps;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)d, (int)nb, 1.0f, S,
                    ATT_BK, v + t0 * ldk, (int)ldk, 1.0f, O, (int)d);
    }
    for (int64_t r = 0; r < m; r++) {
        float inv = sum[r] > 0.0f ? 1.0f / sum[r] : 0.0f;
        for (int64_t j = 0; j < d; j++) out[r * ldq + j] = O[r * d + j] * inv;
    }
}

typedef struct att_job {
    const vlm_op *op;
    float *scratch; /* ATT_SCRATCH floats per thread */
} att_job;

/* Thread t of nt takes every nt-th unit: (row tile, query head), or for a single row
 * (row, KV head, run of that head's group).  Causal tiles differ in length, so
 * interleaving balances them; a decode's group is cut into as many runs as it takes
 * to give every thread work (a 7B decode has 4 KV heads). */
static void attention_task(const void *p, int t, int nt) {
    const att_job *job = p;
    const vlm_op *op = job->op;
    vlm_tensor q = op->src[0], k = op->src[1], v = op->src[2], seg = op->src[3];
    int64_t nq = q.ne[0], nk = k.ne[0];
    int64_t H = op->p.attention.n_head, KVH = op->p.attention.n_kv_head;
    int64_t d = op->p.attention.head_dim, group = H / KVH, ldk = KVH * d;
    float scale = op->p.attention.scale, *scratch = job->scratch + (size_t)t * ATT_SCRATCH;
    const int32_t *cu = seg.data ? (const int32_t *)seg.data : NULL;
    int64_t nseg = seg.data ? vlm_tensor_numel(seg) - 1 : 0;
    /* heads per run of a single row: the heads shared out over the threads, at most a tile */
    int64_t per_thread = (H + nt - 1) / nt;
    int64_t hb = per_thread < ATT_BQ ? per_thread : ATT_BQ;
    int64_t lo[ATT_BQ], hi[ATT_BQ], unit = 0;
    for (int64_t r0 = 0, r1; r0 < nq; r0 = r1) {
        /* the tile: up to ATT_BQ rows, ending at the next segment bound */
        r1 = r0 + ATT_BQ < nq ? r0 + ATT_BQ : nq;
        for (int64_t s = 0; cu && s <= nseg; s++)
            if (cu[s] > r0 && cu[s] < r1) r1 = cu[s];
        if (r1 - r0 == 1) { /* one row: the group's heads are the rows */
            for (int64_t g = 0; g < KVH; g++)
                for (int64_t h0 = 0; h0 < group; h0 += hb) {
                    if (unit++ % nt != t) continue;
                    int64_t m = group - h0 < hb ? group - h0 : hb;
                    int64_t off = (r0 * H + g * group + h0) * d;
                    for (int64_t r = 0; r < m; r++)
                        att_row_range(r0, nq, nk, cu, nseg, &lo[r], &hi[r]);
                    attend_rows(f32(op->out) + off, f32(q) + off, d, m, lo, hi,
                                f32(k) + g * d, f32(v) + g * d, ldk, d, scale, scratch);
                }
            continue;
        }
        for (int64_t h = 0; h < H; h++) {
            if (unit++ % nt != t) continue;
            int64_t g = h / group, off = (r0 * H + h) * d;
            for (int64_t r = r0; r < r1; r++)
                att_row_range(r, nq, nk, cu, nseg, &lo[r - r0], &hi[r - r0]);
            attend_rows(f32(op->out) + off, f32(q) + off, H * d, r1 - r0, lo, hi, f32(k) + g * d,
                        f32(v) + g * d, ldk, d, scale, scratch);
        }
    }
}

static int cpu_attention(vlm_backend *be, const vlm_op *op) {
    if (op->p.attention.head_dim > ATT_DMAX)
        return cpu_fail(be, VLM_EUNSUPPORTED, "attention: head_dim %s > 512", "");
    int64_t work = op->src[0].ne[0] * op->src[1].ne[0] * op->p.attention.n_head *
                   op->p.attention.head_dim;
    att_job job = {op, ctx_of(be)->att_scratch};
    run_parallel(ctx_of(be), attention_task, &job, work);
    return 0;
}

static void get_rows_task(const void *p, int t, int nt) {
    const vlm_op *op = p;
    vlm_tensor src = op->src[0];
    const int32_t *idx = op->src[1].data;
    int64_t n = op->out.ne[0], d = ncols(src), lo, hi;
    size_t es = vlm__dtype_size(src.dtype);
    share(n, t, nt, &lo, &hi);
    for (int64_t i = lo; i < hi; i++)
        vlm__to_f32(f32(op->out) + i * d, (const char *)src.data + (size_t)idx[i] * d * es,
                    src.dtype, d);
}

static int cpu_get_rows(vlm_backend *be, const vlm_op *op) {
    const int32_t *idx = op->src[1].data;
    int64_t n = op->out.ne[0], rows = op->src[0].ne[0];
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= rows) {
            char msg[64];
            snprintf(msg, sizeof msg, "%d of %lld", idx[i], (long long)rows);
            return cpu_fail(be, VLM_ERANGE, "get_rows: row index %s out of range", msg);
        }
    run_parallel(ctx_of(be), get_rows_task, op, vlm_tensor_numel(op->out));
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

/* SAMPLE: the host sampler's candidates and draw (sampler.c, sample_draw.h) on the
 * row as it is; stack scratch only (k is capped). */
static int32_t sample_top_k(const vlm_op *op, const float *l, const uint8_t *seen, int64_t V) {
    vlm_cand c[VLM_SAMPLE_MAX_CANDIDATES];
    int64_t n = vlm__sample_candidates(l, seen, V, op->p.sample.penalty,
                                       op->p.sample.temperature, op->p.sample.top_k, c,
                                       VLM_SAMPLE_MAX_CANDIDATES);
    return n < 0 ? -1 : vlm__sample_draw(c, n, op->p.sample.top_p, op->p.sample.u);
}

static int cpu_sample(vlm_backend *be, const vlm_op *op) {
    (void)be;
    const float *l = f32(op->src[0]);
    uint8_t *seen = op->src[1].data;
    int64_t V = ncols(op->src[0]);
    int32_t tok = 0;
    if (op->p.sample.greedy) {
        float best = vlm__penalized(l[0], seen && seen[0], op->p.sample.penalty);
        for (int64_t i = 1; i < V; i++) {
            float v = vlm__penalized(l[i], seen && seen[i], op->p.sample.penalty);
            if (v > best) {
                best = v;
                tok = (int32_t)i;
            }
        }
    } else {
        tok = sample_top_k(op, l, seen, V);
    }
    if (seen && tok >= 0) seen[tok] = 1;
    *(int32_t *)op->out.data = tok;
    return 0;
}

static bool cpu_supports_op(vlm_backend *be, const vlm_op *op) {
    (void)be;
    if (op->kind == VLM_OP_SAMPLE)
        return op->out.dtype == VLM_I32 && op->src[0].dtype == VLM_F32 &&
               (!op->src[1].data || op->src[1].dtype == VLM_U8);
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

/* The failpoint (see the top): whether the backend is unusable now. */
static bool cpu_faulted(vlm_backend *be) {
    cpu_ctx *c = ctx_of(be);
    if (c->faulted) return true;
    if (c->fault_after < 0 || c->fault_after-- > 0) return false;
    c->faulted = true;
    cpu_fail(be, VLM_EBACKEND, "%s", "injected fault (VLM_CPU_FAULT_AFTER): the backend is "
             "unusable");
    return true;
}

static int cpu_compute(vlm_backend *be, const vlm_op *op) {
    if (cpu_faulted(be)) return VLM_EBACKEND;
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
    case VLM_OP_SAMPLE: return cpu_sample(be, op);
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
    if (ctx_of(be)->faulted) return VLM_EBACKEND;
    memcpy(dst, src, n);
    return 0;
}

static int cpu_synchronize(vlm_backend *be) {
    return ctx_of(be)->faulted ? VLM_EBACKEND : 0;
}

static const char *cpu_last_error(vlm_backend *be) {
    return ctx_of(be)->last_error;
}

static void cpu_free(vlm_backend *be) {
    cpu_ctx *c = be->ctx;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_broadcast(&c->go);
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < c->n_workers; i++) pthread_join(c->workers[i], NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->go);
    pthread_cond_destroy(&c->done);
    free(c->att_scratch);
    free(c);
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
    if (n_threads > CPU_MAX_THREADS) n_threads = CPU_MAX_THREADS;
    c->n_threads = n_threads;
    c->att_scratch = malloc(sizeof(float) * ATT_SCRATCH * (size_t)n_threads);
    if (!c->att_scratch) {
        free(be);
        free(c);
        return NULL;
    }
    const char *fault = getenv("VLM_CPU_FAULT_AFTER");
    c->fault_after = -1;
    if (fault && *fault) {
        char *end = NULL;
        long long n = strtoll(fault, &end, 10);
        if (*end || n < 0)
            vlm__log(VLM_LOG_WARN, "backend cpu: VLM_CPU_FAULT_AFTER='%s' is not a count of "
                     "ops; no fault injected", fault);
        else
            vlm__log(VLM_LOG_WARN, "backend cpu: a fault will be injected after %lld ops "
                     "(VLM_CPU_FAULT_AFTER, for tests)", n);
        if (!*end && n >= 0) c->fault_after = n;
    }
    openblas_set_num_threads(1); /* threads come from the pool: see matmul_task */
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->go, NULL);
    pthread_cond_init(&c->done, NULL);
    for (int t = 1; t < n_threads; t++) {
        worker_arg *wa = &c->args[t];
        wa->c = c;
        wa->t = t;
        if (pthread_create(&c->workers[c->n_workers], NULL, worker_main, wa) != 0) break;
        c->n_workers++;
    }
    c->n_threads = c->n_workers + 1;
    be->iface = &cpu_iface;
    be->ctx = c;
    return be;
}
