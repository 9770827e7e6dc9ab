/* sample.cu — SAMPLE: the next token drawn on the device, so a decode step copies back
 * 4 bytes instead of a vocabulary-sized logits row and the host does no top-k.
 *
 * One block of SAMPLE_THREADS over one logits row; values are the penalized (and for
 * sampling, tempered) logits, computed on the fly from the row and the seen mask
 * (sample_draw.h's arithmetic, as the host sampler and the CPU backend).
 *   - greedy: a block argmax, ties to the lowest id (the host's first maximum).
 *   - top-k: the k-th largest value by radix select on order-preserving 32-bit keys
 *     (8 passes of 4 bits, a histogram per warp so the shared atomics of a pass spread
 *     over 32 copies); every id whose key reaches it goes to shared memory (more than
 *     VLM_SAMPLE_MAX_CANDIDATES: out = -1, the host draws instead); a rank sort puts
 *     them in candidate order; thread 0 runs vlm__sample_draw, the host's own loop, in
 *     double as the host does.
 * The drawn id is marked in the seen mask by the kernel, so the next step's penalty
 * sees it without a copy.  NaN logits have no defined order here or on the host.
 */
#include "common.cuh"

extern "C" {
#include "sample_draw.h"
}

#define SAMPLE_THREADS 1024
#define SAMPLE_WARPS (SAMPLE_THREADS / 32)
#define RADIX_BITS 4
#define RADIX_BINS (1 << RADIX_BITS)

/* A float as an unsigned key with the same order (-0 and +0 equal, as floats compare). */
__device__ __forceinline__ uint32_t order_key(float v) {
    uint32_t u = __float_as_uint(v == 0.0f ? 0.0f : v);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float penalized_at(const float *l, const uint8_t *seen, int64_t i,
                                              float penalty) {
    return vlm__penalized(l[i], seen && seen[i], penalty);
}

__global__ void __launch_bounds__(SAMPLE_THREADS)
sample_greedy_kernel(int32_t *out, const float *l, uint8_t *seen, int64_t V, float penalty) {
    __shared__ float bv[SAMPLE_THREADS];
    __shared__ int32_t bi[SAMPLE_THREADS];
    int t = threadIdx.x;
    float best = -INFINITY;
    int32_t id = INT32_MAX; /* none yet */
    for (int64_t i = t; i < V; i += SAMPLE_THREADS) {
        float v = penalized_at(l, seen, i, penalty);
        if (id == INT32_MAX || v > best) { /* ids rise along the loop: first maximum */
            best = v;
            id = (int32_t)i;
        }
    }
    bv[t] = best;
    bi[t] = id;
    __syncthreads();
    for (int s = SAMPLE_THREADS / 2; s > 0; s >>= 1) {
        if (t < s && bi[t + s] != INT32_MAX &&
            (bi[t] == INT32_MAX || vlm__cand_before(bv[t + s], bi[t + s], bv[t], bi[t]))) {
            bv[t] = bv[t + s];
            bi[t] = bi[t + s];
        }
        __syncthreads();
    }
    if (t == 0) {
        int32_t tok = bi[0] == INT32_MAX ? 0 : bi[0];
        if (seen) seen[tok] = 1;
        *out = tok;
    }
}

__global__ void __launch_bounds__(SAMPLE_THREADS)
sample_top_k_kernel(int32_t *out, const float *l, uint8_t *seen, int64_t V, float penalty,
                    float temperature, int64_t k, float top_p, double u) {
    __shared__ uint32_t hist[SAMPLE_WARPS][RADIX_BINS];
    __shared__ uint32_t s_prefix;
    __shared__ int64_t s_want;
    __shared__ int s_n;
    __shared__ vlm_cand cand[VLM_SAMPLE_MAX_CANDIDATES], sorted[VLM_SAMPLE_MAX_CANDIDATES];
    int t = threadIdx.x, warp = t / 32;
    if (k > V) k = V;

    /* radix select: the key of the k-th largest value, RADIX_BITS at a time from the top */
    uint32_t prefix = 0, mask = 0;
    int64_t want = k; /* its rank among the values that match prefix under mask */
    for (int shift = 32 - RADIX_BITS; shift >= 0; shift -= RADIX_BITS) {
        for (int b = t; b < SAMPLE_WARPS * RADIX_BINS; b += SAMPLE_THREADS)
            hist[b / RADIX_BINS][b % RADIX_BINS] = 0;
        __syncthreads();
        for (int64_t i = t; i < V; i += SAMPLE_THREADS) {
            uint32_t key = order_key(penalized_at(l, seen, i, penalty) / temperature);
            if ((key & mask) == prefix) atomicAdd(&hist[warp][(key >> shift) & (RADIX_BINS - 1)], 1u);
        }
        __syncthreads();
        if (t == 0) {
            int64_t above = 0;
            for (int d = RADIX_BINS - 1; d >= 0; d--) {
                int64_t c = 0;
                for (int w = 0; w < SAMPLE_WARPS; w++) c += hist[w][d];
                if (above + c >= want || d == 0) {
                    s_prefix = prefix | ((uint32_t)d << shift);
                    s_want = want - above;
                    break;
                }
                above += c;
            }
        }
        __syncthreads();
        prefix = s_prefix;
        want = s_want;
        mask |= (uint32_t)(RADIX_BINS - 1) << shift;
    }

    /* every id at or above the k-th value (the k plus ties), in shared memory */
    if (t == 0) s_n = 0;
    __syncthreads();
    for (int64_t i = t; i < V; i += SAMPLE_THREADS) {
        float v = penalized_at(l, seen, i, penalty) / temperature;
        if (order_key(v) < prefix) continue;
        int slot = atomicAdd(&s_n, 1);
        if (slot < VLM_SAMPLE_MAX_CANDIDATES) cand[slot] = vlm_cand{v, (int32_t)i};
    }
    __syncthreads();
    int n = s_n;
    if (n > VLM_SAMPLE_MAX_CANDIDATES) { /* too many ties for the block: the host draws */
        if (t == 0) *out = -1;
        return;
    }
    /* rank sort into candidate order (ids are distinct, so ranks are too) */
    for (int j = t; j < n; j += SAMPLE_THREADS) {
        int rank = 0;
        for (int m = 0; m < n; m++)
            rank += vlm__cand_before(cand[m].v, cand[m].id, cand[j].v, cand[j].id);
        sorted[rank] = cand[j];
    }
    __syncthreads();
    if (t == 0) {
        int32_t tok = vlm__sample_draw(sorted, n, top_p, u);
        if (seen) seen[tok] = 1;
        *out = tok;
    }
}

bool cuda_sample_supported(const vlm_op *op) {
    return op->out.dtype == VLM_I32 && op->src[0].dtype == VLM_F32 &&
           (!op->src[1].data || op->src[1].dtype == VLM_U8);
}

int cuda_sample(cuda_ctx *cx, cudaStream_t stream, const vlm_op *op) {
    int32_t *out = (int32_t *)op->out.data;
    const float *l = (const float *)op->src[0].data;
    uint8_t *seen = (uint8_t *)op->src[1].data;
    int64_t V = cuda_ncols(op->src[0]);
    if (op->p.sample.greedy)
        sample_greedy_kernel<<<1, SAMPLE_THREADS, 0, stream>>>(out, l, seen, V,
                                                               op->p.sample.penalty);
    else
        sample_top_k_kernel<<<1, SAMPLE_THREADS, 0, stream>>>(
            out, l, seen, V, op->p.sample.penalty, op->p.sample.temperature, op->p.sample.top_k,
            op->p.sample.top_p, op->p.sample.u);
    CUDA_TRY(cudaGetLastError());
    return 0;
}
