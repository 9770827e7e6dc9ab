/* test-backend-ops.c — the CUDA backend against the CPU reference, op by op (ggml's
 * test-backend-ops).
 *
 * A case table: op, dtypes and shapes — odd sizes that hit every edge of the kernels'
 * tiles and vector paths, and the real Qwen2.5-VL 3B/7B and vision-tower dims.  Each
 * case draws seeded inputs, runs the op on both backends with identical values (the
 * CUDA backend gets bf16 weights, the CPU the same bf16 values widened to f32), and
 * compares the outputs by normalised mean squared error,
 *     NMSE = Σ (cuda − cpu)² / Σ cpu²,
 * against the case's limit (each limit says why it is what it is).  Every output buffer
 * has guard bands of a sentinel pattern before and after it, and the output itself
 * starts as a NaN pattern: a write out of bounds fails the guard check, an element never
 * written stays NaN, and any NaN fails.  The first mismatches are printed.
 * `--perf` also times the CUDA op (and runs a few large perf-only cases): figures only,
 * they never change a result.  `--quick` runs only the small cases (for memcheck and
 * racecheck under compute-sanitizer, where every kernel is slow).
 * Without a CUDA build or without a usable GPU every parity test reports SKIP with the
 * reason; backend_cuda_new_reports_clearly runs everywhere.
 * Usage: test-backend-ops [--perf] [--quick] [TEST_NAME]
 */
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "sample_cases.h"
#include "test.h"

static bool perf_mode;
static bool quick_mode; /* --quick: small cases only (for runs under compute-sanitizer) */

/* ---- limits (NMSE) ---------------------------------------------------------------- */

/* MATMUL with n > 4 rows: the CUDA backend rounds x to bf16 (relative error ≤ 2⁻⁹,
 * NMSE ≈ 1.3e-6 on these inputs) before a tensor-core GEMM; weights are the same bf16
 * values on both sides, so that rounding is the whole difference.  8x headroom. */
#define LIM_MATMUL_BF16 1e-5
/* MATMUL with n ≤ 4 (decode GEMV): x stays f32; only the order of the f32 sums
 * differs (NMSE ~1e-13). */
#define LIM_MATMUL_F32 1e-9
/* f32 kernels whose only differences are reduction order or the last ulp of
 * expf/erff/sqrtf (RMS_NORM, SWIGLU, GELU, the f32 attention kernels). */
#define LIM_F32 1e-9
/* Bit-identical by construction (ADD, ROPE with unfused products, GET/SET_ROWS). */
#define LIM_EXACT 0.0
/* Tensor-core attention (prefill, vision): q, k, v and the softmax weights are rounded
 * to bf16, sums in f32.  A CPU simulation of exactly that rounding on these inputs
 * (scores with unit variance) gives NMSE 6e-6 … 1e-5; a key missed at 2000 keys costs
 * ~5e-4, at 13 keys ~0.1, so 5e-5 still catches masking errors. */
#define LIM_FLASH 5e-5

/* ---- the case table ---------------------------------------------------------------- */

enum {
    F_BIAS = 1 << 0,      /* MATMUL with a bias */
    F_INPLACE = 1 << 1,   /* out is the first source */
    F_SEG_ODD = 1 << 2,   /* ATTENTION with irregular segments (see seg_bounds) */
    F_PERF_ONLY = 1 << 3, /* CUDA timing only (--perf), no CPU run */
};

typedef struct op_case {
    vlm_op_kind kind;
    /* MATMUL: a=n b=k c=m | RMS_NORM: a=rows b=d | ADD/SWIGLU/GELU: a=rows b=cols |
     * ROPE: a=n b=heads c=d | ATTENTION: a=nq b=nk c=H d=KVH e=head_dim f=segment length
     * (0: causal) | GET_ROWS: a=n b=table rows c=cols, dt=table dtype |
     * SET_ROWS: a=n b=dst rows c=cols */
    int64_t a, b, c, d, e, f;
    int flags;
    vlm_dtype dt;
    double limit;
    const char *what; /* where the dims come from */
} op_case;

#define MM(n, k, m, fl, w)                                                                 \
    {VLM_OP_MATMUL, n, k, m, 0, 0, 0, fl, VLM_F32, (n) <= 4 ? LIM_MATMUL_F32 : LIM_MATMUL_BF16, w}
#define ATT(nq, nk, H, KVH, D, seg, fl, lim, w)                                            \
    {VLM_OP_ATTENTION, nq, nk, H, KVH, D, seg, fl, VLM_F32, lim, w}

static const op_case matmul_cases[] = {
    MM(1, 7, 5, F_BIAS, "odd"), MM(1, 100, 77, 0, "odd, k % 8 != 0 (scalar GEMV)"),
    MM(2, 33, 17, F_BIAS, "odd"), MM(3, 64, 9, 0, "odd"), MM(4, 136, 31, F_BIAS, "odd"),
    MM(5, 33, 17, F_BIAS, "odd, first GEMM size"), MM(7, 129, 65, 0, "odd"),
    MM(64, 64, 64, F_BIAS, "square"), MM(97, 1000, 300, F_BIAS, "odd"),
    MM(1, 3584, 3584, F_BIAS, "7B q_proj, decode"), MM(1, 3584, 512, F_BIAS, "7B k/v_proj, decode"),
    MM(1, 3584, 18944, 0, "7B gate/up, decode"), MM(1, 18944, 3584, 0, "7B down, decode"),
    MM(1, 2048, 11008, 0, "3B gate/up, decode"), MM(1, 2048, 151936, 0, "3B lm_head, decode"),
    MM(745, 3584, 3584, F_BIAS, "7B q_proj, prefill chunk"),
    MM(745, 3584, 18944, 0, "7B gate/up, prefill chunk"),
    MM(745, 18944, 3584, 0, "7B down, prefill chunk"),
    MM(745, 2048, 11008, 0, "3B gate/up, prefill"),
    MM(2880, 1176, 1280, 0, "vision patch embed"), MM(2880, 1280, 1280, F_BIAS, "vision q/k/v"),
    MM(2880, 1280, 3420, F_BIAS, "vision gate/up"), MM(2880, 3420, 1280, F_BIAS, "vision down"),
    MM(720, 5120, 5120, F_BIAS, "vision merger mlp.0"), MM(720, 5120, 3584, F_BIAS, "merger mlp.2"),
    MM(2100, 18944, 64, 0, "x larger than the bf16 workspace: row blocks"),
    {0},
};

static const op_case norm_cases[] = {
    {VLM_OP_RMS_NORM, 1, 7, 0, 0, 0, 0, 0, VLM_F32, LIM_F32, "odd"},
    {VLM_OP_RMS_NORM, 3, 33, 0, 0, 0, 0, 0, VLM_F32, LIM_F32, "odd"},
    {VLM_OP_RMS_NORM, 1, 3584, 0, 0, 0, 0, 0, VLM_F32, LIM_F32, "7B decode"},
    {VLM_OP_RMS_NORM, 745, 3584, 0, 0, 0, 0, 0, VLM_F32, LIM_F32, "7B prefill"},
    {VLM_OP_RMS_NORM, 5, 2048, 0, 0, 0, 0, 0, VLM_F32, LIM_F32, "3B"},
    {VLM_OP_RMS_NORM, 2880, 1280, 0, 0, 0, 0, 0, VLM_F32, LIM_F32, "vision"},
    {0},
};

static const op_case elementwise_cases[] = {
    {VLM_OP_ADD, 1, 1001, 0, 0, 0, 0, 0, VLM_F32, LIM_EXACT, "odd"},
    {VLM_OP_ADD, 745, 3584, 0, 0, 0, 0, F_INPLACE, VLM_F32, LIM_EXACT, "7B residual"},
    {VLM_OP_SWIGLU, 3, 37, 0, 0, 0, 0, 0, VLM_F32, LIM_F32, "odd"},
    {VLM_OP_SWIGLU, 745, 18944, 0, 0, 0, 0, F_INPLACE, VLM_F32, LIM_F32, "7B mlp"},
    {VLM_OP_SWIGLU, 2880, 3420, 0, 0, 0, 0, F_INPLACE, VLM_F32, LIM_F32, "vision mlp"},
    {VLM_OP_GELU, 1, 13, 0, 0, 0, 0, 0, VLM_F32, LIM_F32, "odd"},
    {VLM_OP_GELU, 720, 5120, 0, 0, 0, 0, F_INPLACE, VLM_F32, LIM_F32, "vision merger"},
    {0},
};

static const op_case rope_cases[] = {
    {VLM_OP_ROPE, 1, 1, 2, 0, 0, 0, 0, VLM_F32, LIM_EXACT, "smallest"},
    {VLM_OP_ROPE, 5, 3, 8, 0, 0, 0, 0, VLM_F32, LIM_EXACT, "odd"},
    {VLM_OP_ROPE, 7, 2, 34, 0, 0, 0, F_INPLACE, VLM_F32, LIM_EXACT, "odd, in place"},
    {VLM_OP_ROPE, 745, 28, 128, 0, 0, 0, F_INPLACE, VLM_F32, LIM_EXACT, "7B q, M-RoPE"},
    {VLM_OP_ROPE, 745, 4, 128, 0, 0, 0, 0, VLM_F32, LIM_EXACT, "7B k into k_rot"},
    {VLM_OP_ROPE, 2880, 16, 80, 0, 0, 0, F_INPLACE, VLM_F32, LIM_EXACT, "vision 2-D RoPE"},
    {0},
};

static const op_case attention_cases[] = {
    /* decode: split-K f32 kernel (one query, no segments, H/KVH <= 8) */
    ATT(1, 1, 1, 1, 16, 0, 0, LIM_F32, "decode, one key"),
    ATT(1, 37, 4, 2, 64, 0, 0, LIM_F32, "decode, odd"),
    ATT(1, 129, 4, 4, 80, 0, 0, LIM_F32, "decode, d 80 (partial lanes)"),
    ATT(1, 1000, 8, 1, 128, 0, 0, LIM_F32, "decode, 8 heads per KV head"),
    ATT(1, 300, 16, 1, 128, 0, 0, LIM_F32, "decode, 16 per KV head (f32 fallback)"),
    ATT(1, 70, 40, 1, 16, 0, 0, LIM_F32, "decode, 40 per KV head (CPU: tiles of 32)"),
    ATT(1, 14000, 28, 4, 128, 0, 0, LIM_F32, "7B decode at a 14k cache"),
    ATT(1, 14000, 16, 2, 128, 0, 0, LIM_F32, "3B decode at a 14k cache"),
    ATT(1, 5000, 14, 2, 64, 0, 0, LIM_F32, "0.5B decode"),
    /* prefill: tensor-core flash kernel (d 16/32/64/80/128), causal bottom-right */
    ATT(2, 2, 2, 1, 16, 0, 0, LIM_FLASH, "causal, 2 rows"),
    ATT(5, 13, 4, 2, 32, 0, 0, LIM_FLASH, "causal on a cache, odd"),
    ATT(17, 17, 4, 2, 64, 0, 0, LIM_FLASH, "causal, odd"),
    ATT(63, 63, 2, 1, 128, 0, 0, LIM_FLASH, "one tile minus one"),
    ATT(64, 64, 2, 1, 128, 0, 0, LIM_FLASH, "one tile"),
    ATT(65, 130, 4, 2, 128, 0, 0, LIM_FLASH, "one tile plus one, on a cache"),
    ATT(100, 1000, 4, 4, 80, 0, 0, LIM_FLASH, "d 80, no GQA"),
    ATT(745, 2245, 28, 4, 128, 0, 0, LIM_FLASH, "7B prefill chunk on a 1.5k cache"),
    ATT(128, 13000, 28, 4, 128, 0, 0, LIM_FLASH, "7B prefill rows on a 13k cache"),
    ATT(200, 200, 16, 2, 128, 0, 0, LIM_FLASH, "3B prefill from empty"),
    /* segments (vision): bidirectional inside each */
    ATT(2880, 2880, 16, 16, 80, 64, 0, LIM_FLASH, "vision windows of 64 patches"),
    ATT(1440, 1440, 16, 16, 80, 1440, 0, LIM_FLASH, "vision full attention, one frame"),
    ATT(100, 100, 4, 4, 16, 0, F_SEG_ODD, LIM_FLASH, "irregular segments, rows outside any"),
    ATT(150, 150, 2, 2, 80, 0, F_SEG_ODD, LIM_FLASH, "irregular segments, d 80"),
    /* head dims without a tensor-core kernel: the f32 fallback */
    ATT(7, 7, 2, 2, 8, 0, 0, LIM_F32, "d 8 (f32 fallback)"),
    ATT(9, 20, 3, 1, 24, 0, 0, LIM_F32, "d 24 (f32 fallback)"),
    ATT(3, 50, 2, 1, 200, 0, 0, LIM_F32, "d 200 (f32 fallback)"),
    ATT(30, 30, 4, 4, 8, 0, F_SEG_ODD, LIM_F32, "segments, d 8 (f32 fallback)"),
    /* --perf only: the benchmark's shapes */
    ATT(745, 13745, 28, 4, 128, 0, F_PERF_ONLY, 0, "7B prefill chunk on a 13k cache"),
    ATT(1, 14336, 28, 4, 128, 0, F_PERF_ONLY, 0, "7B decode at 14k"),
    ATT(2880, 2880, 16, 16, 80, 2880, F_PERF_ONLY, 0, "vision full attention, 2880 patches"),
    {0},
};

static const op_case get_rows_cases[] = {
    {VLM_OP_GET_ROWS, 1, 1, 1, 0, 0, 0, 0, VLM_F32, LIM_EXACT, "smallest"},
    {VLM_OP_GET_ROWS, 5, 17, 33, 0, 0, 0, 0, VLM_BF16, LIM_EXACT, "odd, bf16 table"},
    {VLM_OP_GET_ROWS, 7, 9, 10, 0, 0, 0, 0, VLM_F16, LIM_EXACT, "odd, f16 table"},
    {VLM_OP_GET_ROWS, 745, 151936, 2048, 0, 0, 0, 0, VLM_BF16, LIM_EXACT, "3B embedding gather"},
    {VLM_OP_GET_ROWS, 720, 720, 5120, 0, 0, 0, 0, VLM_F32, LIM_EXACT, "vision window order"},
    {VLM_OP_GET_ROWS, 13000, 14000, 512, 0, 0, 0, 0, VLM_F32, LIM_EXACT, "7B KV compaction"},
    {0},
};

static const op_case set_rows_cases[] = {
    {VLM_OP_SET_ROWS, 1, 1, 3, 0, 0, 0, 0, VLM_F32, LIM_EXACT, "smallest"},
    {VLM_OP_SET_ROWS, 3, 10, 5, 0, 0, 0, 0, VLM_F32, LIM_EXACT, "odd"},
    {VLM_OP_SET_ROWS, 720, 745, 3584, 0, 0, 0, 0, VLM_F32, LIM_EXACT, "7B vision rows into pads"},
    {0},
};

/* ---- inputs ---------------------------------------------------------------------- */

/* xorshift64*: seeded, identical for both backends */
static uint64_t rng_state;
static void rng_seed(uint64_t s) {
    rng_state = s * 0x9E3779B97F4A7C15ull + 1;
}
static uint64_t rng_u64(void) {
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 2685821657736338717ull;
}
static float rng_uniform(void) { /* [-1, 1) */
    return (float)(rng_u64() >> 40) / (float)(1u << 23) - 1.0f;
}

/* One source or output of a case on the host: its values, and the dtype each backend
 * gets it in. */
typedef struct host_tensor {
    bool used;
    vlm_dtype dt_cpu, dt_cuda;
    int ndim;
    int64_t ne[4];
    float *f;   /* float values (exactly representable in both dtypes) */
    int32_t *i; /* I32 values */
} host_tensor;

static int64_t ht_numel(const host_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->ne[d];
    return n;
}

static host_tensor ht_make(vlm_dtype cpu, vlm_dtype cuda, int ndim, int64_t a, int64_t b,
                           int64_t c) {
    host_tensor t = {.used = true, .dt_cpu = cpu, .dt_cuda = cuda, .ndim = ndim,
                     .ne = {a, b, c, 0}};
    int64_t n = ht_numel(&t);
    if (cpu == VLM_I32) t.i = calloc((size_t)n + 1, sizeof(int32_t));
    else t.f = calloc((size_t)n + 1, sizeof(float));
    ASSERT_MSG(t.f || t.i, "out of host memory for %lld elements", (long long)n);
    return t;
}

static void ht_free(host_tensor *t) {
    free(t->f);
    free(t->i);
    memset(t, 0, sizeof *t);
}

/* uniform values times amp, rounded to what dt can hold exactly */
static void fill_uniform(host_tensor *t, float amp, vlm_dtype exact) {
    int64_t n = ht_numel(t);
    for (int64_t j = 0; j < n; j++) {
        float v = rng_uniform() * amp;
        if (exact == VLM_BF16) v = vlm__bf16_to_f32(vlm__f32_to_bf16(v));
        if (exact == VLM_F16) v = roundf(v * 1024.0f) / 1024.0f; /* |v| ≤ 1: f16-exact */
        t->f[j] = v;
    }
}

/* f16 bits of a value that f16 holds exactly (zero or a normal number) */
static uint16_t f16_bits(float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    if ((u & 0x7fffffff) == 0) return sign;
    int32_t e = (int32_t)((u >> 23) & 0xff) - 127 + 15;
    return (uint16_t)(sign | (uint16_t)(e << 10) | (uint16_t)((u >> 13) & 0x3ff));
}

/* ---- running a case on one backend ------------------------------------------------- */

#define GUARD 256u               /* bytes of sentinel before and after every output */
#define SENTINEL 0x7fa5a5a5u      /* a NaN: an output element never written stays NaN */

typedef struct dev_buf {
    void *base;   /* backend allocation: GUARD | tensor | GUARD */
    size_t bytes; /* tensor bytes */
    vlm_tensor t;
} dev_buf;

static size_t dt_bytes(vlm_dtype dt, int64_t n) {
    return (size_t)n * vlm__dtype_size(dt);
}

/* Allocate a guarded buffer for t in dtype dt, upload its values (or the NaN pattern
 * when values is false). */
static dev_buf upload(vlm_backend *be, const host_tensor *t, vlm_dtype dt, bool values) {
    dev_buf b = {0};
    int64_t n = ht_numel(t);
    b.bytes = dt_bytes(dt, n);
    size_t total = b.bytes + 2 * GUARD;
    uint8_t *host = malloc(total);
    ASSERT_MSG(host, "out of host memory (%zu bytes)", total);
    for (size_t j = 0; j < total / 4; j++) ((uint32_t *)host)[j] = SENTINEL;
    uint8_t *p = host + GUARD;
    if (values) {
        for (int64_t j = 0; j < n; j++) switch (dt) {
            case VLM_F32: ((float *)p)[j] = t->f[j]; break;
            case VLM_BF16: ((uint16_t *)p)[j] = vlm__f32_to_bf16(t->f[j]); break;
            case VLM_F16: ((uint16_t *)p)[j] = f16_bits(t->f[j]); break;
            case VLM_I32: ((int32_t *)p)[j] = t->i[j]; break;
            default: ASSERT_MSG(0, "dtype %s in a test input", vlm__dtype_name(dt));
            }
    }
    b.base = vlm_backend_alloc(be, total);
    ASSERT_MSG(b.base, "backend %s: cannot allocate %zu bytes: %s", be->iface->name, total,
               vlm_backend_last_error(be));
    ASSERT_EQ_INT(be->iface->set(be, b.base, host, total), 0);
    free(host);
    b.t = vlm_tensor_make(dt, (uint8_t *)b.base + GUARD, t->ndim, t->ne);
    return b;
}

typedef struct case_io {
    host_tensor src[4];
    host_tensor out; /* shape of the output; values = initial content (SET_ROWS) */
    bool out_init;   /* out starts with out.f (else the NaN pattern) */
} case_io;

/* Run the case on be: out_host receives GUARD | output | GUARD (bytes).  Returns the
 * op's code; *ms the mean time per op over reps runs (reps 0: one untimed run). */
static int run_on(vlm_backend *be, bool cuda, const op_case *c, const case_io *io,
                  uint8_t *out_host, int reps, double *ms) {
    dev_buf src[4] = {{0}}, out = {0};
    vlm_op op = {.kind = c->kind};
    for (int s = 0; s < 4; s++)
        if (io->src[s].used) {
            vlm_dtype dt = cuda ? io->src[s].dt_cuda : io->src[s].dt_cpu;
            src[s] = upload(be, &io->src[s], dt, true);
            op.src[s] = src[s].t;
        }
    bool inplace = c->flags & F_INPLACE;
    if (inplace) {
        out = src[0];
        out.t = vlm_tensor_make(VLM_F32, src[0].t.data, io->out.ndim, io->out.ne);
    } else {
        out = upload(be, &io->out, VLM_F32, io->out_init);
    }
    op.out = out.t;
    if (c->kind == VLM_OP_RMS_NORM) op.p.rms_norm.eps = 1e-6f;
    if (c->kind == VLM_OP_ATTENTION) {
        op.p.attention.n_head = c->c;
        op.p.attention.n_kv_head = c->d;
        op.p.attention.head_dim = c->e;
        op.p.attention.scale = 1.0f / sqrtf((float)c->e);
    }
    ASSERT_MSG(be->iface->supports_op(be, &op), "backend %s does not support %s (%s)",
               be->iface->name, vlm_op_name(c->kind), c->what);
    int rc = be->iface->compute(be, &op);
    if (!rc) rc = be->iface->synchronize(be);
    if (!rc && out_host) rc = be->iface->get(be, out_host, out.base, out.bytes + 2 * GUARD);
    if (!rc && reps > 0) { /* after the result is saved: in place ops change their input */
        double t0 = test_now_ms();
        for (int r = 0; r < reps && !rc; r++) rc = be->iface->compute(be, &op);
        if (!rc) rc = be->iface->synchronize(be);
        *ms = (test_now_ms() - t0) / reps;
    }
    for (int s = 0; s < 4; s++) vlm_backend_free_buffer(be, src[s].base);
    if (!inplace) vlm_backend_free_buffer(be, out.base);
    return rc;
}

/* ---- building a case's inputs ------------------------------------------------------- */

/* irregular segment bounds for n rows (rows past the last bound are in no segment) */
static int64_t seg_bounds(int64_t n, int32_t *b) {
    if (n == 100) { /* empty segment, 1-row segment, rows 90.. outside every segment */
        const int32_t v[] = {0, 7, 50, 50, 51, 90};
        memcpy(b, v, sizeof v);
        return 6;
    }
    if (n == 150) {
        const int32_t v[] = {0, 1, 64, 65, 129, 150};
        memcpy(b, v, sizeof v);
        return 6;
    }
    const int32_t v[] = {0, 3, 17, (int32_t)n}; /* any other n */
    memcpy(b, v, sizeof v);
    return 4;
}

static void build_case(const op_case *c, case_io *io) {
    memset(io, 0, sizeof *io);
    int64_t a = c->a, b = c->b, cc = c->c;
    switch (c->kind) {
    case VLM_OP_MATMUL: /* x [n,k] f32; w [m,k] bf16 values; b [m] */
        io->src[0] = ht_make(VLM_F32, VLM_F32, 2, a, b, 0);
        fill_uniform(&io->src[0], 1.0f, VLM_F32);
        io->src[1] = ht_make(VLM_F32, VLM_BF16, 2, cc, b, 0);
        fill_uniform(&io->src[1], sqrtf(3.0f / (float)b), VLM_BF16);
        if (c->flags & F_BIAS) {
            io->src[2] = ht_make(VLM_F32, VLM_BF16, 1, cc, 0, 0);
            fill_uniform(&io->src[2], 0.5f, VLM_BF16);
        }
        io->out = ht_make(VLM_F32, VLM_F32, 2, a, cc, 0);
        break;
    case VLM_OP_RMS_NORM:
        io->src[0] = ht_make(VLM_F32, VLM_F32, 2, a, b, 0);
        fill_uniform(&io->src[0], 3.0f, VLM_F32);
        io->src[1] = ht_make(VLM_F32, VLM_BF16, 1, b, 0, 0);
        fill_uniform(&io->src[1], 1.0f, VLM_BF16);
        io->out = ht_make(VLM_F32, VLM_F32, 2, a, b, 0);
        break;
    case VLM_OP_ADD:
    case VLM_OP_SWIGLU:
    case VLM_OP_GELU:
        io->src[0] = ht_make(VLM_F32, VLM_F32, 2, a, b, 0);
        fill_uniform(&io->src[0], 8.0f, VLM_F32); /* the whole useful range of expf/erff */
        if (c->kind != VLM_OP_GELU) {
            io->src[1] = ht_make(VLM_F32, VLM_F32, 2, a, b, 0);
            fill_uniform(&io->src[1], 2.0f, VLM_F32);
        }
        io->out = ht_make(VLM_F32, VLM_F32, 2, a, b, 0);
        break;
    case VLM_OP_ROPE: { /* x [n, heads, d]; cos/sin [n, d/2] of random angles */
        io->src[0] = ht_make(VLM_F32, VLM_F32, 3, a, b, cc);
        fill_uniform(&io->src[0], 2.0f, VLM_F32);
        io->src[1] = ht_make(VLM_F32, VLM_F32, 2, a, cc / 2, 0);
        io->src[2] = ht_make(VLM_F32, VLM_F32, 2, a, cc / 2, 0);
        for (int64_t j = 0; j < a * (cc / 2); j++) {
            float ang = rng_uniform() * 1000.0f;
            io->src[1].f[j] = cosf(ang);
            io->src[2].f[j] = sinf(ang);
        }
        io->out = ht_make(VLM_F32, VLM_F32, 3, a, b, cc);
        break;
    }
    case VLM_OP_ATTENTION: { /* unit-variance scores: uniform ±1.7 has std ~1 */
        int64_t H = c->c, KVH = c->d, D = c->e;
        io->src[0] = ht_make(VLM_F32, VLM_F32, 3, a, H, D);
        io->src[1] = ht_make(VLM_F32, VLM_F32, 3, b, KVH, D);
        io->src[2] = ht_make(VLM_F32, VLM_F32, 3, b, KVH, D);
        for (int s = 0; s < 3; s++) fill_uniform(&io->src[s], 1.7f, VLM_F32);
        if (c->f > 0 || (c->flags & F_SEG_ODD)) {
            int32_t tmp[8];
            int64_t nb = 0;
            if (c->flags & F_SEG_ODD) {
                nb = seg_bounds(a, tmp);
                io->src[3] = ht_make(VLM_I32, VLM_I32, 1, nb, 0, 0);
                memcpy(io->src[3].i, tmp, sizeof(int32_t) * (size_t)nb);
            } else {
                nb = (a + c->f - 1) / c->f + 1;
                io->src[3] = ht_make(VLM_I32, VLM_I32, 1, nb, 0, 0);
                for (int64_t s = 0; s < nb; s++)
                    io->src[3].i[s] = (int32_t)(s * c->f < a ? s * c->f : a);
            }
        }
        io->out = ht_make(VLM_F32, VLM_F32, 3, a, H, D);
        break;
    }
    case VLM_OP_GET_ROWS: /* table [rows, cols] in dt; idx [n] with both ends used */
        io->src[0] = ht_make(VLM_F32, VLM_F32, 2, b, cc, 0);
        io->src[0].dt_cpu = io->src[0].dt_cuda = c->dt;
        fill_uniform(&io->src[0], 1.0f, c->dt);
        io->src[1] = ht_make(VLM_I32, VLM_I32, 1, a, 0, 0);
        for (int64_t j = 0; j < a; j++) io->src[1].i[j] = (int32_t)(rng_u64() % (uint64_t)b);
        io->src[1].i[0] = (int32_t)(b - 1);
        if (a > 1) io->src[1].i[a - 1] = 0;
        io->out = ht_make(VLM_F32, VLM_F32, 2, a, cc, 0);
        break;
    case VLM_OP_SET_ROWS: { /* distinct destination rows: a shuffled prefix of 0..b-1 */
        io->src[0] = ht_make(VLM_F32, VLM_F32, 2, a, cc, 0);
        fill_uniform(&io->src[0], 1.0f, VLM_F32);
        io->src[1] = ht_make(VLM_I32, VLM_I32, 1, a, 0, 0);
        int32_t *perm = malloc(sizeof(int32_t) * (size_t)b);
        for (int64_t j = 0; j < b; j++) perm[j] = (int32_t)j;
        for (int64_t j = b - 1; j > 0; j--) {
            int64_t r = (int64_t)(rng_u64() % (uint64_t)(j + 1));
            int32_t t = perm[j];
            perm[j] = perm[r];
            perm[r] = t;
        }
        memcpy(io->src[1].i, perm, sizeof(int32_t) * (size_t)a);
        free(perm);
        io->out = ht_make(VLM_F32, VLM_F32, 2, b, cc, 0);
        fill_uniform(&io->out, 1.0f, VLM_F32);
        io->out_init = true;
        break;
    }
    default: ASSERT_MSG(0, "no inputs for op %s", vlm_op_name(c->kind));
    }
}

static void free_case(case_io *io) {
    for (int s = 0; s < 4; s++) ht_free(&io->src[s]);
    ht_free(&io->out);
}

/* ---- comparing -------------------------------------------------------------------- */

static void case_label(const op_case *c, char *buf, size_t cap) {
    switch (c->kind) {
    case VLM_OP_MATMUL:
        snprintf(buf, cap, "matmul n=%lld k=%lld m=%lld%s", (long long)c->a, (long long)c->b,
                 (long long)c->c, c->flags & F_BIAS ? " +bias" : "");
        break;
    case VLM_OP_ATTENTION:
        snprintf(buf, cap, "attention nq=%lld nk=%lld H=%lld KVH=%lld d=%lld %s", (long long)c->a,
                 (long long)c->b, (long long)c->c, (long long)c->d, (long long)c->e,
                 c->flags & F_SEG_ODD ? "segments" : c->f ? "windows" : "causal");
        if (c->f) snprintf(buf + strlen(buf), cap - strlen(buf), " of %lld", (long long)c->f);
        break;
    case VLM_OP_ROPE:
        snprintf(buf, cap, "rope n=%lld heads=%lld d=%lld", (long long)c->a, (long long)c->b,
                 (long long)c->c);
        break;
    case VLM_OP_GET_ROWS:
    case VLM_OP_SET_ROWS:
        snprintf(buf, cap, "%s n=%lld rows=%lld cols=%lld %s", vlm_op_name(c->kind),
                 (long long)c->a, (long long)c->b, (long long)c->c, vlm__dtype_name(c->dt));
        break;
    default:
        snprintf(buf, cap, "%s %lldx%lld", vlm_op_name(c->kind), (long long)c->a, (long long)c->b);
        break;
    }
    if (c->flags & F_INPLACE) snprintf(buf + strlen(buf), cap - strlen(buf), " in place");
}

/* Guard bands intact? Prints the first damaged byte. */
static bool guards_ok(const char *who, const uint8_t *buf, size_t bytes) {
    for (int side = 0; side < 2; side++) {
        const uint8_t *g = side ? buf + GUARD + bytes : buf;
        for (size_t j = 0; j < GUARD; j += 4) {
            uint32_t u;
            memcpy(&u, g + j, 4);
            if (u != SENTINEL) {
                printf("      %s wrote %s the output: guard byte %zu is 0x%08x\n", who,
                       side ? "after" : "before", j, u);
                return false;
            }
        }
    }
    return true;
}

/* NMSE of got against ref; prints the first mismatches. */
static double compare(const float *got, const float *ref, int64_t n, double limit, bool *nan) {
    double num = 0.0, den = 0.0;
    *nan = false;
    for (int64_t j = 0; j < n; j++) {
        if (isnan(got[j]) || isnan(ref[j])) *nan = true;
        double d = (double)got[j] - ref[j];
        num += d * d;
        den += (double)ref[j] * ref[j];
    }
    double nmse = den > 0 ? num / den : num;
    if (!(nmse <= limit) || *nan) {
        /* an element is "off" when it alone is worth more than the whole limit */
        double rms = sqrt(den / (double)(n > 0 ? n : 1));
        double tol = sqrt(limit > 0 ? limit : 1e-12) * rms * 4.0;
        int shown = 0;
        for (int64_t j = 0; j < n && shown < 8; j++) {
            double d = fabs((double)got[j] - ref[j]);
            if (isnan(got[j]) || isnan(ref[j]) || d > tol) {
                printf("      [%lld] cuda %.9g cpu %.9g (diff %.3g)\n", (long long)j, got[j],
                       ref[j], d);
                shown++;
            }
        }
    }
    return nmse;
}

static double case_flops(const op_case *c) {
    switch (c->kind) {
    case VLM_OP_MATMUL: return 2.0 * (double)c->a * (double)c->b * (double)c->c;
    case VLM_OP_ATTENTION: {
        double keys = 0; /* keys attended, summed over rows (causal or segments) */
        if (c->f > 0) keys = (double)c->a * (double)c->f;
        else if (c->flags & F_SEG_ODD) keys = (double)c->a * 30.0;
        else keys = (double)c->a * (double)(c->b - c->a) + (double)c->a * (double)(c->a + 1) / 2;
        return 4.0 * keys * (double)c->c * (double)c->e;
    }
    default: return 0.0;
    }
}

/* bytes an op must move at least (inputs read once, output written once) */
static double case_bytes(const case_io *io, const op_case *c) {
    double bytes = 0;
    for (int s = 0; s < 4; s++)
        if (io->src[s].used) {
            double n = (double)ht_numel(&io->src[s]);
            if (c->kind == VLM_OP_GET_ROWS && s == 0) n = (double)c->a * (double)c->c;
            bytes += n * (double)vlm__dtype_size(io->src[s].dt_cuda);
        }
    return bytes + (double)ht_numel(&io->out) * 4.0;
}

/* the largest tensor of a case, in elements (--quick skips the big ones) */
static int64_t case_size(const op_case *c) {
    switch (c->kind) {
    case VLM_OP_MATMUL: {
        int64_t x = c->a * c->b, w = c->c * c->b, o = c->a * c->c;
        return x > w ? (x > o ? x : o) : (w > o ? w : o);
    }
    case VLM_OP_ATTENTION: return (c->a > c->b ? c->a : c->b) * c->c * c->e;
    case VLM_OP_GET_ROWS:
    case VLM_OP_SET_ROWS: return c->b * c->c;
    default: return c->a * c->b * (c->c ? c->c : 1);
    }
}

/* ---- the runner --------------------------------------------------------------------- */

/* A CUDA backend, or SKIP with the reason. */
static vlm_backend *cuda_or_skip(void) {
#ifndef VLM_HAVE_CUDA
    SKIP("built without CUDA (nvcc was not found at build time)");
    return NULL;
#else
    char err[VLM_ERR_LEN] = "";
    vlm_backend *be = NULL;
    if (vlm_backend_new("cuda", 0, &be, err) != 0) SKIP("no usable CUDA backend: %s", err);
    return be;
#endif
}

static void run_cases(const op_case *cases) {
    vlm_backend *cuda = cuda_or_skip();
    vlm_backend *cpu = vlm_backend_cpu_new(0);
    ASSERT(cpu);
    int bad = 0, n = 0;
    for (const op_case *c = cases; c->kind || c->a; c++, n++) {
        char label[160];
        case_label(c, label, sizeof label);
        bool perf_only = c->flags & F_PERF_ONLY;
        if (perf_only && !perf_mode) continue;
        if (quick_mode && (case_size(c) > (1 << 22) || case_flops(c) > 4e9)) continue;
        rng_seed((uint64_t)(c - cases) * 7919u + (uint64_t)c->kind * 104729u + 1);
        case_io io;
        build_case(c, &io);
        size_t out_bytes = (size_t)ht_numel(&io.out) * 4;
        uint8_t *got = malloc(out_bytes + 2 * GUARD), *ref = malloc(out_bytes + 2 * GUARD);
        ASSERT(got && ref);
        double ms = 0;
        int reps = perf_mode ? 10 : 0;
        int rc = run_on(cuda, true, c, &io, got, reps, &ms);
        if (rc) {
            printf("  BAD  %-62s cuda failed: %s (%s)\n", label, vlm_strerror(rc),
                   vlm_backend_last_error(cuda));
            bad++;
        } else if (!perf_only) {
            ASSERT_EQ_INT(run_on(cpu, false, c, &io, ref, 0, NULL), 0);
            ASSERT_MSG(guards_ok("cpu", ref, out_bytes), "the cpu reference wrote out of bounds");
            bool g_ok = guards_ok("cuda", got, out_bytes), nan = false;
            double nmse = compare((const float *)(got + GUARD), (const float *)(ref + GUARD),
                                  ht_numel(&io.out), c->limit, &nan);
            bool ok = g_ok && !nan && nmse <= c->limit;
            printf("  %s %-62s nmse %.2e (limit %.0e)%s  %s\n", ok ? "ok  " : "BAD ", label, nmse,
                   c->limit, nan ? " NaN" : "", c->what);
            if (!ok) bad++;
        }
        if (!rc && perf_mode) {
            double fl = case_flops(c), by = case_bytes(&io, c);
            printf("  perf %-62s %9.3f ms  %8.1f GB/s", label, ms, by / (ms * 1e6));
            if (fl > 0) printf("  %7.1f TFLOP/s", fl / (ms * 1e9));
            printf("\n");
        }
        fflush(stdout);
        free(got);
        free(ref);
        free_case(&io);
    }
    vlm_backend_free(cpu);
    vlm_backend_free(cuda);
    ASSERT_MSG(bad == 0, "%d of %d cases failed", bad, n);
}

/* The CPU attention itself against softmax(q·kᵀ·scale)·v computed here in double, row
 * by row with the plain two-pass softmax: the CPU backend is the reference the CUDA
 * kernels are held to, so its tiling, masking and online rescaling are checked on their
 * own.  Every attention case up to 2 GFLOP (the double loop is slow).  f32 against
 * double: each output is off by a few ulps of f32 (NMSE ~1e-14); 1e-11 still fails a
 * key missed or counted twice (NMSE >= 1e-6 at 14k keys). */
#define LIM_CPU_VS_DOUBLE 1e-11

static void attention_double(const op_case *c, const case_io *io, float *out) {
    int64_t nq = c->a, nk = c->b, H = c->c, KVH = c->d, D = c->e, group = H / KVH;
    const float *q = io->src[0].f, *k = io->src[1].f, *v = io->src[2].f;
    const int32_t *cu = io->src[3].used ? io->src[3].i : NULL;
    int64_t nseg = cu ? ht_numel(&io->src[3]) - 1 : 0;
    double scale = 1.0 / sqrt((double)D), *p = malloc(sizeof(double) * (size_t)nk);
    ASSERT(p);
    for (int64_t i = 0; i < nq; i++)
        for (int64_t h = 0; h < H; h++) {
            int64_t lo = 0, hi = nk - nq + i + 1, g = h / group; /* causal, bottom-right */
            for (int64_t s = 0; s < nseg; s++)
                if (i >= cu[s] && i < cu[s + 1]) { /* inside a segment: all of it */
                    lo = cu[s];
                    hi = cu[s + 1];
                    break;
                }
            double mx = -INFINITY, sum = 0.0;
            for (int64_t t = lo; t < hi; t++) {
                double dot = 0.0;
                for (int64_t j = 0; j < D; j++)
                    dot += (double)q[(i * H + h) * D + j] * k[(t * KVH + g) * D + j];
                p[t] = dot * scale;
                mx = p[t] > mx ? p[t] : mx;
            }
            for (int64_t t = lo; t < hi; t++) sum += (p[t] = exp(p[t] - mx));
            for (int64_t j = 0; j < D; j++) {
                double o = 0.0;
                for (int64_t t = lo; t < hi; t++) o += p[t] * v[(t * KVH + g) * D + j];
                out[(i * H + h) * D + j] = hi > lo ? (float)(o / sum) : 0.0f;
            }
        }
    free(p);
}

static void test_backend_cpu_attention_matches_double(void) {
    vlm_backend *cpu = vlm_backend_cpu_new(0);
    ASSERT(cpu);
    int bad = 0, n = 0;
    for (const op_case *c = attention_cases; c->kind || c->a; c++) {
        if ((c->flags & F_PERF_ONLY) || case_flops(c) > 2e9) continue;
        char label[160];
        case_label(c, label, sizeof label);
        rng_seed((uint64_t)(c - attention_cases) * 7919u + 1);
        case_io io;
        build_case(c, &io);
        size_t out_bytes = (size_t)ht_numel(&io.out) * 4;
        uint8_t *got = malloc(out_bytes + 2 * GUARD);
        float *ref = malloc(out_bytes);
        ASSERT(got && ref);
        double ms = 0;
        ASSERT_EQ_INT(run_on(cpu, false, c, &io, got, 2, &ms), 0);
        attention_double(c, &io, ref);
        bool g_ok = guards_ok("cpu", got, out_bytes), nan = false;
        double nmse = compare((const float *)(got + GUARD), ref, ht_numel(&io.out),
                              LIM_CPU_VS_DOUBLE, &nan);
        bool ok = g_ok && !nan && nmse <= LIM_CPU_VS_DOUBLE;
        printf("  %s %-62s nmse %.2e (cpu %.1f ms)  %s\n", ok ? "ok  " : "BAD ", label, nmse, ms,
               c->what);
        bad += !ok;
        n++;
        free(got);
        free(ref);
        free_case(&io);
    }
    vlm_backend_free(cpu);
    ASSERT_MSG(bad == 0, "%d of %d cases failed", bad, n);
}

static void test_backend_matmul_matches_cpu(void) {
    run_cases(matmul_cases);
}
static void test_backend_rms_norm_matches_cpu(void) {
    run_cases(norm_cases);
}
static void test_backend_elementwise_matches_cpu(void) {
    run_cases(elementwise_cases);
}
static void test_backend_rope_matches_cpu(void) {
    run_cases(rope_cases);
}
static void test_backend_attention_matches_cpu(void) {
    run_cases(attention_cases);
}
static void test_backend_get_rows_matches_cpu(void) {
    run_cases(get_rows_cases);
}
static void test_backend_set_rows_matches_cpu(void) {
    run_cases(set_rows_cases);
}

/* SAMPLE: the CUDA op draws the CPU op's token for the same row, seen ids and u (the
 * CPU op is checked against the host sampler in test-engine-sampler).  Tokens must be
 * equal: the kernel runs the CPU's own draw loop (sample_draw.h), so only the last bit
 * of expf can differ, which moves a draw only when u falls within ~1e-7 of a boundary
 * (about one draw in 10^5 here).  Also: the row is left as it was, the same id is
 * marked seen on both, -1 exactly where the CPU says -1, and the 4-byte output has
 * intact guard bands. */
static void test_backend_sample_matches_cpu(void) {
    enum { DRAWS = 32 };
    vlm_backend *cuda = cuda_or_skip();
    vlm_backend *cpu = vlm_backend_cpu_new(0);
    ASSERT(cpu);
    int bad = 0, n = 0;
    for (const sample_case *c = sample_cases; c->vocab; c++, n++) {
        int64_t V = c->vocab, one = 1;
        float *l = malloc(sizeof(float) * (size_t)V), *back = malloc(sizeof(float) * (size_t)V);
        uint8_t *seen = malloc((size_t)V), *seen_cpu = malloc((size_t)V);
        uint8_t *seen_cuda = malloc((size_t)V);
        ASSERT(l && back && seen && seen_cpu && seen_cuda);
        sample_case_inputs(c, (uint64_t)n + 101, l, seen);
        vlm_backend *bes[2] = {cpu, cuda};
        void *dl[2], *ds[2], *dt[2];
        for (int b = 0; b < 2; b++) {
            dl[b] = vlm_backend_alloc(bes[b], sizeof(float) * (size_t)V);
            ds[b] = vlm_backend_alloc(bes[b], (size_t)V);
            dt[b] = vlm_backend_alloc(bes[b], 4 + 2 * GUARD);
            ASSERT(dl[b] && ds[b] && dt[b]);
        }
        uint64_t st = 7 + (uint64_t)n;
        int mism = 0, draws = quick_mode ? 4 : DRAWS; /* --quick: under a sanitizer */
        for (int d = 0; d < draws; d++) {
            double u = sample_uniform(&st);
            int32_t tok[2];
            uint8_t guard[4 + 2 * GUARD];
            for (int b = 0; b < 2; b++) {
                vlm_backend *be = bes[b];
                for (size_t j = 0; j < sizeof guard / 4; j++) ((uint32_t *)guard)[j] = SENTINEL;
                vlm_tensor tl = vlm_tensor_2d(VLM_F32, dl[b], 1, V);
                vlm_tensor ts = vlm_tensor_make(VLM_U8, ds[b], 1, &V);
                vlm_tensor tt = vlm_tensor_make(VLM_I32, (uint8_t *)dt[b] + GUARD, 1, &one);
                ASSERT_EQ_INT(vlm_backend_set(be, tl, l), 0);
                ASSERT_EQ_INT(vlm_backend_set(be, ts, seen), 0);
                ASSERT_EQ_INT(be->iface->set(be, dt[b], guard, sizeof guard), 0);
                int rc = vlm_sample(be, tt, tl, &ts, c->greedy, sample_case_k(c), c->temperature,
                                    c->top_p, c->penalty, u);
                if (!rc) rc = be->iface->get(be, guard, dt[b], sizeof guard);
                ASSERT_MSG(rc == 0, "%s: %s failed: %s", c->what, be->iface->name,
                           vlm_backend_last_error(be));
                ASSERT_MSG(guards_ok(be->iface->name, guard, 4), "%s: out of bounds", c->what);
                memcpy(&tok[b], guard + GUARD, 4);
                ASSERT_EQ_INT(vlm_backend_get(be, back, tl), 0);
                ASSERT_MSG(memcmp(back, l, sizeof(float) * (size_t)V) == 0,
                           "%s: %s changed the logits row", c->what, be->iface->name);
                ASSERT_EQ_INT(vlm_backend_get(be, b ? seen_cuda : seen_cpu, ts), 0);
            }
            bool seen_same = memcmp(seen_cpu, seen_cuda, (size_t)V) == 0;
            if (tok[0] != tok[1] || !seen_same) {
                if (mism++ < 4)
                    printf("      %s, draw %d (u %.9f): cuda %d cpu %d%s\n", c->what, d, u,
                           tok[1], tok[0], seen_same ? "" : ", seen masks differ");
            }
        }
        printf("  %s %-46s %d draws, %d differ\n", mism ? "BAD " : "ok  ", c->what, draws, mism);
        bad += mism > 0;
        for (int b = 0; b < 2; b++) {
            vlm_backend_free_buffer(bes[b], dl[b]);
            vlm_backend_free_buffer(bes[b], ds[b]);
            vlm_backend_free_buffer(bes[b], dt[b]);
        }
        free(l);
        free(back);
        free(seen);
        free(seen_cpu);
        free(seen_cuda);
    }
    vlm_backend_free(cpu);
    vlm_backend_free(cuda);
    ASSERT_MSG(bad == 0, "%d of %d sampling cases differ", bad, n);
}

/* Creating "cuda" either works or says why; "auto" always gives a backend. */
static void test_backend_cuda_new_reports_clearly(void) {
    char err[VLM_ERR_LEN] = "";
    vlm_backend *be = NULL;
    int rc = vlm_backend_new("cuda", 0, &be, err);
#ifndef VLM_HAVE_CUDA
    ASSERT(rc != 0 && be == NULL);
    ASSERT_CONTAINS(err, "no CUDA support");
#else
    if (rc == 0) {
        ASSERT_EQ_STR(be->iface->name, "cuda");
        ASSERT_EQ_INT(be->iface->weight_dtype, VLM_BF16);
        vlm_backend_free(be);
    } else {
        ASSERT(be == NULL);
        ASSERT_MSG(strstr(err, "no usable CUDA device") || strstr(err, "compute capability"),
                   "unclear message: %s", err);
    }
#endif
    be = NULL;
    ASSERT_EQ_INT(vlm_backend_new("auto", 0, &be, err), 0);
    ASSERT(be != NULL);
    ASSERT_EQ_STR(be->iface->name, rc == 0 ? "cuda" : "cpu");
    vlm_backend_free(be);
}

/* Out of device memory is an error naming what was needed and what was free. */
static void test_backend_cuda_oom_is_reported(void) {
    vlm_backend *be = cuda_or_skip();
    void *p = vlm_backend_alloc(be, (size_t)1 << 50); /* 1 PiB */
    ASSERT(p == NULL);
    ASSERT_CONTAINS(vlm_backend_last_error(be), "out of device memory");
    ASSERT_CONTAINS(vlm_backend_last_error(be), "need");
    ASSERT_CONTAINS(vlm_backend_last_error(be), "free");
    /* not fatal: the backend still works */
    p = vlm_backend_alloc(be, 1024);
    ASSERT(p != NULL);
    ASSERT_EQ_INT(be->iface->synchronize(be), 0);
    vlm_backend_free_buffer(be, p);
    vlm_backend_free(be);
}

/* A bad row index found on the device is VLM_ERANGE at the next sync, not a crash, and
 * the backend stays usable. */
static void test_backend_cuda_bad_row_index_is_erange(void) {
    vlm_backend *be = cuda_or_skip();
    float table[6] = {1, 2, 3, 4, 5, 6}, out[4] = {9, 9, 9, 9};
    int32_t idx[2] = {1, 7};
    void *t = vlm_backend_alloc(be, sizeof table), *o = vlm_backend_alloc(be, sizeof out);
    void *ix = vlm_backend_alloc(be, sizeof idx);
    ASSERT(t && o && ix);
    vlm_tensor tt = vlm_tensor_2d(VLM_F32, t, 3, 2), ot = vlm_tensor_2d(VLM_F32, o, 2, 2);
    int64_t ni = 2;
    vlm_tensor it = vlm_tensor_make(VLM_I32, ix, 1, &ni);
    ASSERT_EQ_INT(vlm_backend_set(be, tt, table), 0);
    ASSERT_EQ_INT(vlm_backend_set(be, it, idx), 0);
    ASSERT_EQ_INT(vlm_get_rows(be, ot, tt, it), 0);
    ASSERT_EQ_INT(be->iface->synchronize(be), VLM_ERANGE);
    ASSERT_CONTAINS(vlm_backend_last_error(be), "get_rows");
    ASSERT_EQ_INT(vlm_backend_get(be, out, ot), 0);
    ASSERT_NEAR(out[0], 3.0, 0);
    ASSERT_NEAR(out[2], 0.0, 0); /* the bad row is zero-filled */
    vlm_backend_free_buffer(be, t);
    vlm_backend_free_buffer(be, o);
    vlm_backend_free_buffer(be, ix);
    vlm_backend_free(be);
}

/* A CUDA fault mid-stream makes this and every later op fail with VLM_EBACKEND and a
 * message naming the file and line of the failing call. */
static void test_backend_cuda_fault_is_sticky(void) {
    vlm_backend *be = cuda_or_skip();
    int64_t n = 1 << 20;
    void *a = vlm_backend_alloc(be, (size_t)n * 4);
    ASSERT(a);
    vlm_tensor good = vlm_tensor_make(VLM_F32, a, 1, &n);
    vlm_tensor wild = vlm_tensor_make(VLM_F32, (void *)(uintptr_t)0x1000, 1, &n);
    int rc = vlm_add(be, wild, good, good); /* writes through an unmapped address */
    if (rc == 0) rc = be->iface->synchronize(be);
    ASSERT_EQ_INT(rc, VLM_EBACKEND);
    ASSERT_CONTAINS(vlm_backend_last_error(be), ".cu:");
    ASSERT_EQ_INT(vlm_add(be, good, good, good), VLM_EBACKEND);
    ASSERT_EQ_INT(be->iface->synchronize(be), VLM_EBACKEND);
    vlm_backend_free_buffer(be, a);
    vlm_backend_free(be);
}

static const test_case tests[] = {
    {"backend_cuda_new_reports_clearly", test_backend_cuda_new_reports_clearly},
    {"backend_cpu_attention_matches_double", test_backend_cpu_attention_matches_double},
    {"backend_matmul_matches_cpu", test_backend_matmul_matches_cpu},
    {"backend_rms_norm_matches_cpu", test_backend_rms_norm_matches_cpu},
    {"backend_elementwise_matches_cpu", test_backend_elementwise_matches_cpu},
    {"backend_rope_matches_cpu", test_backend_rope_matches_cpu},
    {"backend_attention_matches_cpu", test_backend_attention_matches_cpu},
    {"backend_get_rows_matches_cpu", test_backend_get_rows_matches_cpu},
    {"backend_set_rows_matches_cpu", test_backend_set_rows_matches_cpu},
    {"backend_sample_matches_cpu", test_backend_sample_matches_cpu},
    {"backend_cuda_oom_is_reported", test_backend_cuda_oom_is_reported},
    {"backend_cuda_bad_row_index_is_erange", test_backend_cuda_bad_row_index_is_erange},
    {"backend_cuda_fault_is_sticky", test_backend_cuda_fault_is_sticky},
    {0},
};

int main(int argc, char **argv) {
    /* --perf, --quick anywhere; other arguments go to the runner */
    int k = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--perf")) perf_mode = true;
        else if (!strcmp(argv[i], "--quick")) quick_mode = true;
        else argv[k++] = argv[i];
    }
    argc = k;
    return test_main(argc, argv, tests);
}
