/* attention.cu — ATTENTION: out = softmax(q·kᵀ·scale)·v per head, GQA (head h reads KV
 * head h / (H/KVH)); q, out [nq, H, d]; k, v [nk, KVH, d], all f32 (the KV cache is f32).
 * Key ranges per query row i (row_range): without seg, causal aligned bottom-right
 * (keys 0 … nk−nq+i); with seg (sorted i32 row bounds, nq == nk), the segment holding i
 * (the vision windows / frames), bidirectional; a row in no segment falls back to
 * causal, as the CPU reference does.
 *
 * Three kernels, chosen per call in cuda_attention():
 *   attn_flash_kernel<D>  prefill and the vision tower (nq > 1; d = 16, 32, 64, 80, 128).
 *       Flash-attention 2 style on tensor cores (mma.sync m16n8k16 bf16 → f32): a block
 *       is 4 warps × 16 query rows of one head; it walks its rows' key range in tiles of
 *       64 keys, converting each K/V tile f32 → bf16 into shared memory (rows padded by
 *       8 bf16 so fragment loads are bank-conflict free), S = Q·Kᵀ stays in registers,
 *       an online softmax in base 2 (q pre-scaled by scale·log2 e) gives P, which is
 *       re-packed from the S accumulators straight into A fragments (their layouts
 *       match) for O += P·V, with V fragments read by ldmatrix.trans.  Rows see only
 *       their own keys (mask), so causal and segment attention share the code; tiles
 *       past every row's range are never visited.  Precision: q, k, v and P are rounded
 *       to bf16 (sums and softmax in f32): NMSE ~1e-5 against the f32 reference.
 *   attn_decode_kernel    one query (decode) over a long cache, split-K
 *       ("flash-decoding"): the keys are cut into n_split chunks, one block per (chunk,
 *       KV head) handles all H/KVH query heads of that KV head so each K/V row is read
 *       once; a warp takes 4 keys at a time (one lane per 1/32 of d), keeps a running
 *       max, sum and accumulator per head in f32; the block merges its warps, and
 *       attn_combine_kernel merges the chunks.  All f32: matches the reference to
 *       rounding.  Partials go to the context's fixed workspace (fewer splits if it
 *       would overflow).
 *   attn_simt_kernel      anything else (d ≤ 256, any shape; or VLM_CUDA_ATTN=simt):
 *       one warp per (query row, head), the reference's online softmax in f32.
 */
#include "common.cuh"

#define LOG2E 1.4426950408889634f

/* [lo, hi) of the keys query row i attends to. */
__device__ __forceinline__ void row_range(int64_t i, int64_t nq, int64_t nk, const int32_t *seg,
                                          int64_t nseg, int64_t *lo, int64_t *hi) {
    *lo = 0;
    *hi = nk - nq + i + 1;
    if (!seg || nseg < 1 || seg[0] > i) return;
    int64_t a = 0, b = nseg - 1; /* the last s with seg[s] <= i */
    while (a < b) {
        int64_t mid = (a + b + 1) / 2;
        if (seg[mid] <= i) a = mid;
        else b = mid - 1;
    }
    if (i < seg[a + 1]) {
        *lo = seg[a] > 0 ? seg[a] : 0;
        *hi = seg[a + 1] < nk ? seg[a + 1] : nk; /* never read past the keys */
    }
}

/* ---- plain f32 kernel: one warp per (row, head) ---------------------------------- */

#define SIMT_WARPS 4

template <int NT> /* d ≤ 32·NT: lane holds dims lane + 32t */
__global__ void __launch_bounds__(SIMT_WARPS * 32)
attn_simt_kernel(float *out, const float *q, const float *k, const float *v, const int32_t *seg,
                 int64_t nseg, int64_t nq, int64_t nk, int H, int KVH, int D, float scale) {
    int lane = threadIdx.x & 31;
    int64_t ih = (int64_t)blockIdx.x * SIMT_WARPS + threadIdx.x / 32;
    if (ih >= nq * H) return;
    int64_t i = ih / H, lo, hi;
    int h = (int)(ih % H), kvh = h / (H / KVH);
    row_range(i, nq, nk, seg, nseg, &lo, &hi);
    float qv[NT], acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) {
        int dd = lane + 32 * t;
        qv[t] = dd < D ? q[ih * D + dd] : 0.0f;
        acc[t] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int64_t j = lo; j < hi; j++) {
        const float *kj = k + (j * KVH + kvh) * D, *vj = v + (j * KVH + kvh) * D;
        float s = 0.0f;
#pragma unroll
        for (int t = 0; t < NT; t++)
            if (lane + 32 * t < D) s += qv[t] * kj[lane + 32 * t];
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        s *= scale;
        if (s > m) {
            float c = expf(m - s);
            l *= c;
#pragma unroll
            for (int t = 0; t < NT; t++) acc[t] *= c;
            m = s;
        }
        float p = expf(s - m);
        l += p;
#pragma unroll
        for (int t = 0; t < NT; t++)
            if (lane + 32 * t < D) acc[t] += p * vj[lane + 32 * t];
    }
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int t = 0; t < NT; t++)
        if (lane + 32 * t < D) out[ih * D + lane + 32 * t] = acc[t] * inv;
}

/* ---- split-K decode: one query, all heads of a KV head per block ------------------ */

#define DEC_WARPS 4
#define DEC_MAXG 8 /* query heads per KV head handled (Qwen2.5: 7 or 8) */
#define DEC_KEYS 4 /* keys per warp per step: loads in flight */

template <int NT>
__global__ void __launch_bounds__(DEC_WARPS * 32)
attn_decode_kernel(float *out, float *part, const float *q, const float *k, const float *v,
                   int64_t nk, int H, int KVH, int D, float scale, int64_t chunk, int n_split) {
    __shared__ float sm_m[DEC_WARPS][DEC_MAXG], sm_l[DEC_WARPS][DEC_MAXG];
    __shared__ float sm_acc[DEC_WARPS][DEC_MAXG][32 * NT];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int kvh = blockIdx.y, split = blockIdx.x, G = H / KVH;
    const int64_t k0 = (int64_t)split * chunk, k1 = k0 + chunk < nk ? k0 + chunk : nk;
    float qv[DEC_MAXG][NT], acc[DEC_MAXG][NT], m[DEC_MAXG], l[DEC_MAXG];
#pragma unroll
    for (int g = 0; g < DEC_MAXG; g++) {
        m[g] = -INFINITY;
        l[g] = 0.0f;
#pragma unroll
        for (int t = 0; t < NT; t++) {
            int dd = lane + 32 * t;
            qv[g][t] = g < G && dd < D ? q[(int64_t)(kvh * G + g) * D + dd] : 0.0f;
            acc[g][t] = 0.0f;
        }
    }
    for (int64_t j0 = k0 + warp * DEC_KEYS; j0 < k1; j0 += DEC_WARPS * DEC_KEYS) {
        float kr[DEC_KEYS][NT], vr[DEC_KEYS][NT];
#pragma unroll
        for (int u = 0; u < DEC_KEYS; u++) {
            const float *kj = k + ((j0 + u) * KVH + kvh) * D, *vj = v + ((j0 + u) * KVH + kvh) * D;
#pragma unroll
            for (int t = 0; t < NT; t++) {
                bool ok = j0 + u < k1 && lane + 32 * t < D;
                kr[u][t] = ok ? kj[lane + 32 * t] : 0.0f;
                vr[u][t] = ok ? vj[lane + 32 * t] : 0.0f;
            }
        }
#pragma unroll
        for (int u = 0; u < DEC_KEYS; u++) {
            if (j0 + u >= k1) break; /* warp-uniform */
#pragma unroll
            for (int g = 0; g < DEC_MAXG; g++) {
                if (g >= G) break; /* uniform */
                float s = 0.0f;
#pragma unroll
                for (int t = 0; t < NT; t++) s += qv[g][t] * kr[u][t];
                for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
                s *= scale;
                if (s > m[g]) {
                    float c = expf(m[g] - s);
                    l[g] *= c;
#pragma unroll
                    for (int t = 0; t < NT; t++) acc[g][t] *= c;
                    m[g] = s;
                }
                float p = expf(s - m[g]);
                l[g] += p;
#pragma unroll
                for (int t = 0; t < NT; t++) acc[g][t] += p * vr[u][t];
            }
        }
    }
    /* merge the warps of this block */
#pragma unroll
    for (int g = 0; g < DEC_MAXG; g++) {
        if (lane == 0) {
            sm_m[warp][g] = m[g];
            sm_l[warp][g] = l[g];
        }
#pragma unroll
        for (int t = 0; t < NT; t++) sm_acc[warp][g][lane + 32 * t] = acc[g][t];
    }
    __syncthreads();
    for (int e = threadIdx.x; e < G * D; e += DEC_WARPS * 32) {
        int g = e / D, dd = e % D, h = kvh * G + g;
        float M = -INFINITY, L = 0.0f, A = 0.0f;
        for (int w = 0; w < DEC_WARPS; w++) M = fmaxf(M, sm_m[w][g]);
        for (int w = 0; w < DEC_WARPS; w++) {
            if (sm_m[w][g] == -INFINITY) continue; /* that warp saw no key */
            float c = expf(sm_m[w][g] - M);
            L += sm_l[w][g] * c;
            A += sm_acc[w][g][dd] * c;
        }
        if (n_split == 1) {
            out[(int64_t)h * D + dd] = L > 0.0f ? A / L : 0.0f;
        } else {
            float *pp = part + ((int64_t)split * H + h) * (D + 2);
            pp[2 + dd] = A;
            if (dd == 0) {
                pp[0] = M;
                pp[1] = L;
            }
        }
    }
}

/* out[h, :] = merge of the n_split partials (m, l, acc) of head h */
__global__ void attn_combine_kernel(float *out, const float *part, int H, int D, int n_split) {
    int h = blockIdx.x;
    for (int dd = threadIdx.x; dd < D; dd += blockDim.x) {
        float M = -INFINITY, L = 0.0f, A = 0.0f;
        for (int s = 0; s < n_split; s++) M = fmaxf(M, part[((int64_t)s * H + h) * (D + 2)]);
        for (int s = 0; s < n_split; s++) {
            const float *pp = part + ((int64_t)s * H + h) * (D + 2);
            if (pp[0] == -INFINITY) continue;
            float c = expf(pp[0] - M);
            L += pp[1] * c;
            A += pp[2 + dd] * c;
        }
        out[(int64_t)h * D + dd] = L > 0.0f ? A / L : 0.0f;
    }
}

/* ---- tensor-core flash attention ------------------------------------------------- */

#define FA_BM 64 /* query rows per block: 4 warps × 16 */
#define FA_BN 64 /* keys per tile */
static_assert(FA_BM <= FA_BN, "the Q tile is staged in the K tile's shared memory");
#define FA_WARPS 4

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi); /* .x (lo) is the low half */
    return (uint32_t)__bfloat16_as_ushort(v.x) | ((uint32_t)__bfloat16_as_ushort(v.y) << 16);
}

/* 4 floats → 4 bf16 at p (8-byte aligned shared memory) */
__device__ __forceinline__ void store_bf16x4(__nv_bfloat16 *p, float4 x) {
    *(uint2 *)p = make_uint2(pack_bf16(x.x, x.y), pack_bf16(x.z, x.w));
}

__device__ __forceinline__ uint32_t lds32(const __nv_bfloat16 *p) {
    return *(const uint32_t *)p;
}

/* c += a·b for one m16n8k16 tile: a 16×16 bf16 (row), b 16×8 bf16 (col), c 16×8 f32 */
__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], uint32_t b0,
                                         uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* four 8×8 bf16 matrices, transposed: lanes 8i..8i+7 give the row addresses of matrix i */
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], const __nv_bfloat16 *p) {
    uint32_t addr = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

/* Fragment layouts (PTX ISA, mma.m16n8k16, g = lane/4, c = lane%4):
 *   A (16×16): a0 (g, 2c..2c+1)  a1 (g+8, 2c..)  a2 (g, 2c+8..)  a3 (g+8, 2c+8..)
 *   B (16×8):  b0 (k 2c..2c+1, n g)  b1 (k 2c+8.., n g)
 *   C (16×8):  c0,c1 (g, 2c..2c+1)  c2,c3 (g+8, 2c..2c+1)
 * so two adjacent S tiles (keys 16kk..16kk+15) are exactly the A fragment of P. */
template <int D>
__global__ void __launch_bounds__(FA_WARPS * 32)
attn_flash_kernel(float *out, const float *q, const float *k, const float *v, const int32_t *seg,
                  int64_t nseg, int64_t nq, int64_t nk, int H, int KVH, float qscale) {
    constexpr int KP = D + 8; /* padded shared row, in bf16 */
    constexpr int C4 = D / 4; /* float4 per row */
    __shared__ __align__(16) __nv_bfloat16 Ks[FA_BN * KP]; /* Q tile first, then K tiles */
    __shared__ __align__(16) __nv_bfloat16 Vs[FA_BN * KP];
    __shared__ int64_t row_lo[FA_BM], row_hi[FA_BM];
    __shared__ int64_t blk_lo, blk_hi;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, tq = lane & 3;
    const int h = blockIdx.y, kvh = h / (H / KVH);
    const int64_t q0 = (int64_t)blockIdx.x * FA_BM;

    /* 1. key range of every row; the Q tile (scaled, bf16) into Ks */
    for (int r = tid; r < FA_BM; r += FA_WARPS * 32) {
        int64_t lo = 0, hi = 0;
        if (q0 + r < nq) row_range(q0 + r, nq, nk, seg, nseg, &lo, &hi);
        row_lo[r] = lo;
        row_hi[r] = hi;
    }
    for (int e = tid; e < FA_BM * C4; e += FA_WARPS * 32) {
        int r = e / C4, c = (e % C4) * 4;
        int64_t i = q0 + r;
        float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (i < nq) {
            x = *(const float4 *)(q + (i * H + h) * D + c);
            x.x *= qscale;
            x.y *= qscale;
            x.z *= qscale;
            x.w *= qscale;
        }
        store_bf16x4(&Ks[r * KP + c], x);
    }
    __syncthreads();

    /* 2. the block's key range; this warp's Q fragments and row ranges */
    if (tid == 0) {
        int64_t lo = INT64_MAX, hi = 0;
        for (int r = 0; r < FA_BM && q0 + r < nq; r++) {
            lo = row_lo[r] < lo ? row_lo[r] : lo;
            hi = row_hi[r] > hi ? row_hi[r] : hi;
        }
        blk_lo = lo;
        blk_hi = hi;
    }
    const int ra = warp * 16 + g; /* this thread's rows: ra and ra + 8 */
    uint32_t qf[D / 16][4];
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++) {
        qf[ks][0] = lds32(&Ks[ra * KP + ks * 16 + tq * 2]);
        qf[ks][1] = lds32(&Ks[(ra + 8) * KP + ks * 16 + tq * 2]);
        qf[ks][2] = lds32(&Ks[ra * KP + ks * 16 + 8 + tq * 2]);
        qf[ks][3] = lds32(&Ks[(ra + 8) * KP + ks * 16 + 8 + tq * 2]);
    }
    const int64_t lo_a = row_lo[ra], hi_a = row_hi[ra];
    const int64_t lo_b = row_lo[ra + 8], hi_b = row_hi[ra + 8];
    __syncthreads();
    const int64_t t_lo = blk_lo, t_hi = blk_hi;

    float o[D / 8][4];
#pragma unroll
    for (int dt = 0; dt < D / 8; dt++) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;

    for (int64_t t0 = t_lo; t0 < t_hi; t0 += FA_BN) {
        /* 3. K, V tile f32 → bf16; keys past the range are zeros (never NaN) */
        __syncthreads(); /* the previous tile is no longer read */
#pragma unroll 4
        for (int e = tid; e < FA_BN * C4; e += FA_WARPS * 32) {
            int r = e / C4, c = (e % C4) * 4;
            int64_t j = t0 + r;
            float4 kx = make_float4(0.0f, 0.0f, 0.0f, 0.0f), vx = kx;
            if (j < t_hi) {
                kx = *(const float4 *)(k + (j * KVH + kvh) * D + c);
                vx = *(const float4 *)(v + (j * KVH + kvh) * D + c);
            }
            store_bf16x4(&Ks[r * KP + c], kx);
            store_bf16x4(&Vs[r * KP + c], vx);
        }
        __syncthreads();

        /* 4. S = Q·Kᵀ for 16 rows × 64 keys per warp */
        float s[FA_BN / 8][4];
#pragma unroll
        for (int nt = 0; nt < FA_BN / 8; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
            const __nv_bfloat16 *kr = &Ks[(nt * 8 + g) * KP + tq * 2];
#pragma unroll
            for (int ks = 0; ks < D / 16; ks++)
                mma_bf16(s[nt], qf[ks], lds32(kr + ks * 16), lds32(kr + ks * 16 + 8));
        }

        /* 5. mask, online softmax (base 2) */
        float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < FA_BN / 8; nt++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                int64_t j = t0 + nt * 8 + tq * 2 + e;
                if (j < lo_a || j >= hi_a) s[nt][e] = -INFINITY;
                if (j < lo_b || j >= hi_b) s[nt][2 + e] = -INFINITY;
                mx_a = fmaxf(mx_a, s[nt][e]);
                mx_b = fmaxf(mx_b, s[nt][2 + e]);
            }
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 1));
        mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, 2));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 1));
        mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, 2));
        float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
        /* a row with no key yet keeps max −inf: subtract 0 instead (no inf − inf) */
        float base_a = mn_a == -INFINITY ? 0.0f : mn_a, base_b = mn_b == -INFINITY ? 0.0f : mn_b;
        float al_a = exp2f(m_a - base_a), al_b = exp2f(m_b - base_b);
        m_a = mn_a;
        m_b = mn_b;
        float rs_a = 0.0f, rs_b = 0.0f;
#pragma unroll
        for (int nt = 0; nt < FA_BN / 8; nt++) {
            s[nt][0] = exp2f(s[nt][0] - base_a);
            s[nt][1] = exp2f(s[nt][1] - base_a);
            s[nt][2] = exp2f(s[nt][2] - base_b);
            s[nt][3] = exp2f(s[nt][3] - base_b);
            rs_a += s[nt][0] + s[nt][1];
            rs_b += s[nt][2] + s[nt][3];
        }
        l_a = l_a * al_a + rs_a; /* this thread's columns; summed over the quad at the end */
        l_b = l_b * al_b + rs_b;
#pragma unroll
        for (int dt = 0; dt < D / 8; dt++) {
            o[dt][0] *= al_a;
            o[dt][1] *= al_a;
            o[dt][2] *= al_b;
            o[dt][3] *= al_b;
        }

        /* 6. O += P·V: P from the S accumulators, V fragments by ldmatrix.trans */
        const int mi = lane >> 3, mr = lane & 7;
#pragma unroll
        for (int kk = 0; kk < FA_BN / 16; kk++) {
            uint32_t a[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]),
                             pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                             pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
            const __nv_bfloat16 *vrow = &Vs[(kk * 16 + (mi & 1) * 8 + mr) * KP + (mi >> 1) * 8];
#pragma unroll
            for (int dp = 0; dp < D / 16; dp++) {
                uint32_t b[4];
                ldmatrix_x4_trans(b, vrow + dp * 16);
                mma_bf16(o[2 * dp], a, b[0], b[1]);
                mma_bf16(o[2 * dp + 1], a, b[2], b[3]);
            }
        }
    }

    /* 7. normalise and write rows ra, ra + 8 */
    l_a += __shfl_xor_sync(0xffffffffu, l_a, 1);
    l_a += __shfl_xor_sync(0xffffffffu, l_a, 2);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, 1);
    l_b += __shfl_xor_sync(0xffffffffu, l_b, 2);
    float inv_a = l_a > 0.0f ? 1.0f / l_a : 0.0f, inv_b = l_b > 0.0f ? 1.0f / l_b : 0.0f;
    int64_t ia = q0 + ra, ib = ia + 8;
#pragma unroll
    for (int dt = 0; dt < D / 8; dt++) {
        if (ia < nq)
            *(float2 *)(out + (ia * H + h) * D + dt * 8 + tq * 2) =
                make_float2(o[dt][0] * inv_a, o[dt][1] * inv_a);
        if (ib < nq)
            *(float2 *)(out + (ib * H + h) * D + dt * 8 + tq * 2) =
                make_float2(o[dt][2] * inv_b, o[dt][3] * inv_b);
    }
}

/* ---- launchers ------------------------------------------------------------------- */

bool cuda_attention_supported(const vlm_op *op) {
    int64_t H = op->p.attention.n_head, KVH = op->p.attention.n_kv_head;
    return op->p.attention.head_dim <= 256 && H < 65536 && KVH > 0 && H % KVH == 0 &&
           op->src[0].ne[0] * H < INT32_MAX * (int64_t)SIMT_WARPS;
}

template <int D>
static int launch_flash(cuda_ctx *cx, cudaStream_t stream, const vlm_op *op, const int32_t *seg,
                        int64_t nseg) {
    int64_t nq = op->src[0].ne[0], nk = op->src[1].ne[0];
    int H = (int)op->p.attention.n_head, KVH = (int)op->p.attention.n_kv_head;
    dim3 grid((unsigned)((nq + FA_BM - 1) / FA_BM), (unsigned)H);
    attn_flash_kernel<D><<<grid, FA_WARPS * 32, 0, stream>>>(
        (float *)op->out.data, (const float *)op->src[0].data, (const float *)op->src[1].data,
        (const float *)op->src[2].data, seg, nseg, nq, nk, H, KVH,
        op->p.attention.scale * LOG2E);
    CUDA_TRY(cudaGetLastError());
    return 0;
}

template <int NT>
static int launch_decode(cuda_ctx *cx, cudaStream_t stream, const vlm_op *op) {
    int64_t nk = op->src[1].ne[0];
    int H = (int)op->p.attention.n_head, KVH = (int)op->p.attention.n_kv_head;
    int D = (int)op->p.attention.head_dim;
    /* one full wave of blocks, at most ceil(nk / 64) chunks, partials within the
     * workspace */
    int &per_sm = cx->dec_blocks_per_sm[NT];
    if (per_sm == 0) {
        CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, attn_decode_kernel<NT>,
                                                               DEC_WARPS * 32, 0));
        if (per_sm < 1) per_sm = 1; /* asked once: 0 would mean "not asked yet" */
    }
    int64_t n_split = ((int64_t)per_sm * cx->n_sm + KVH - 1) / KVH;
    int64_t by_keys = (nk + 63) / 64, by_ws = cx->att_ws_floats / ((int64_t)H * (D + 2));
    if (n_split > by_keys) n_split = by_keys;
    if (n_split > by_ws) n_split = by_ws;
    if (n_split > 65535) n_split = 65535;
    if (n_split < 1) n_split = 1;
    int64_t chunk = (nk + n_split - 1) / n_split;
    n_split = (nk + chunk - 1) / chunk; /* every chunk has keys */
    float *out = (float *)op->out.data;
    dim3 grid((unsigned)n_split, (unsigned)KVH);
    attn_decode_kernel<NT><<<grid, DEC_WARPS * 32, 0, stream>>>(
        out, cx->att_ws, (const float *)op->src[0].data, (const float *)op->src[1].data,
        (const float *)op->src[2].data, nk, H, KVH, D, op->p.attention.scale, chunk, (int)n_split);
    CUDA_TRY(cudaGetLastError());
    if (n_split > 1) {
        attn_combine_kernel<<<(unsigned)H, 128, 0, stream>>>(out, cx->att_ws, H, D, (int)n_split);
        CUDA_TRY(cudaGetLastError());
    }
    return 0;
}

template <int NT>
static int launch_simt(cuda_ctx *cx, cudaStream_t stream, const vlm_op *op, const int32_t *seg,
                       int64_t nseg) {
    int64_t nq = op->src[0].ne[0], nk = op->src[1].ne[0];
    int H = (int)op->p.attention.n_head, KVH = (int)op->p.attention.n_kv_head;
    int64_t blocks = (nq * H + SIMT_WARPS - 1) / SIMT_WARPS;
    attn_simt_kernel<NT><<<(unsigned)blocks, SIMT_WARPS * 32, 0, stream>>>(
        (float *)op->out.data, (const float *)op->src[0].data, (const float *)op->src[1].data,
        (const float *)op->src[2].data, seg, nseg, nq, nk, H, KVH,
        (int)op->p.attention.head_dim, op->p.attention.scale);
    CUDA_TRY(cudaGetLastError());
    return 0;
}

int cuda_attention(cuda_ctx *cx, cudaStream_t stream, const vlm_op *op) {
    int64_t nq = op->src[0].ne[0];
    int64_t H = op->p.attention.n_head, KVH = op->p.attention.n_kv_head;
    int64_t D = op->p.attention.head_dim;
    const int32_t *seg = (const int32_t *)op->src[3].data;
    int64_t nseg = seg ? vlm_tensor_numel(op->src[3]) - 1 : 0;
    bool aligned = cuda_aligned16(op->src[0].data) && cuda_aligned16(op->src[1].data) &&
                   cuda_aligned16(op->src[2].data) && cuda_aligned16(op->out.data);
    if (cx->attn_impl != CUDA_ATTN_SIMT) {
        if (!seg && nq == 1 && H / KVH <= DEC_MAXG) {
            if (D <= 32) return launch_decode<1>(cx, stream, op);
            if (D <= 64) return launch_decode<2>(cx, stream, op);
            if (D <= 128) return launch_decode<4>(cx, stream, op);
        }
        if (nq > 1 && aligned) {
            switch (D) {
            case 16: return launch_flash<16>(cx, stream, op, seg, nseg);
            case 32: return launch_flash<32>(cx, stream, op, seg, nseg);
            case 64: return launch_flash<64>(cx, stream, op, seg, nseg);
            case 80: return launch_flash<80>(cx, stream, op, seg, nseg);
            case 128: return launch_flash<128>(cx, stream, op, seg, nseg);
            default: break;
            }
        }
    }
    if (D <= 32) return launch_simt<1>(cx, stream, op, seg, nseg);
    if (D <= 64) return launch_simt<2>(cx, stream, op, seg, nseg);
    if (D <= 128) return launch_simt<4>(cx, stream, op, seg, nseg);
    return launch_simt<8>(cx, stream, op, seg, nseg);
}
