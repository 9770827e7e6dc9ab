/* backend.cu — the CUDA backend: context, vtable, device memory, copies, and the entry
 * point vlm_backend_cuda_new().
 *
 * Design (the op kernels live in one .cu per family: matmul, norm, rope, attention, rows,
 * sample):
 *   - weights are bf16 on the device (weight_dtype BF16: the loader converts BF16/F16/F32
 *     files while uploading); activations and the KV cache stay f32, exactly as the model
 *     code plans them.  MATMUL rounds x to bf16 into a fixed workspace and runs a cuBLAS
 *     GEMM with bf16 inputs, f32 accumulation and f32 output (n ≤ 4 rows, i.e. decode,
 *     instead uses a GEMV kernel that reads the bf16 weights once and keeps x in f32);
 *     everything else is f32 kernels.  Attention: a tensor-core flash-attention kernel
 *     for prefill and the vision windows, a split-K flash-decoding kernel for one query
 *     over a long cache, and a plain f32 kernel for any other shape.
 *   - memory: alloc() is cudaMalloc; the workspaces (cuBLAS 32 MiB, bf16 x 64 MiB,
 *     attention partials 8 MiB) are made here, once, with fixed sizes; an op that would
 *     need more runs in pieces (row blocks, fewer splits), so no op ever allocates.
 *   - errors: every CUDA call goes through CUDA_TRY, which records
 *     "file:line expr: message"; after a CUDA failure the context is broken and every
 *     later call returns VLM_EBACKEND with that message (the daemon then restarts).
 *     Bad row indices found by a kernel are reported by the next get/synchronize as
 *     VLM_ERANGE (a mapped host word, no extra copy).  Out of device memory in alloc()
 *     returns NULL with a message naming what was asked and what was free.  A failure
 *     while a step is being recorded as a graph is not fatal (nothing ran): graphs go
 *     off and the step is issued again (VLM_EAGAIN).
 *   - everything runs on one non-blocking stream; set() is an async copy from pageable
 *     memory (the driver stages it before returning, so the caller may reuse its buffer
 *     at once; sources must be pageable, never pinned); get() and synchronize() wait
 *     for the stream.  The loader synchronizes once after the last weight.
 *   - decode steps may run as CUDA graphs (VLM_CUDA_GRAPHS=1; see cuda_graph_begin).
 * Not for: batching several streams (the engine batches: vlm_llm_forward_batch).
 * Thread: one caller at a time; each entry point selects the device first, so the
 * backend may be created on one thread and used on another.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.cuh"
#include "vlm_cuda.h"

#define BLAS_WS_BYTES ((size_t)32 << 20)  /* cuBLAS' recommendation for Hopper */
#define XBF_BYTES ((size_t)64 << 20)      /* x as bf16: [1771, 18944] in one block */
#define ATT_WS_BYTES ((size_t)8 << 20)    /* split-K partials: 7B decode needs ~1 MB */

static cuda_ctx *ctx_of(vlm_backend *be) {
    return (cuda_ctx *)be->ctx;
}

/* Recording a step failed in a way that leaves the device usable (nothing ran, and
 * such errors are not sticky): clear the error and stop recording steps. */
static void graphs_off(cuda_ctx *cx, const char *what, const char *msg) {
    (void)cudaGetLastError();
    vlm__log(VLM_LOG_WARN, "backend cuda: %s: %s while recording a decode step; decode "
             "steps run op by op from now on", what, msg);
    cx->graphs = false;
}

int cuda_fail(cuda_ctx *cx, const char *file, int line, const char *expr, const char *msg) {
    if (cx->capturing) { /* the step is discarded and issued again op by op */
        graphs_off(cx, expr, msg);
        return VLM_EAGAIN;
    }
    if (!cx->broken) { /* keep the first failure: later ones are its consequences */
        snprintf(cx->last_error, sizeof cx->last_error, "%s:%d %s: %s", file, line, expr, msg);
        vlm__log(VLM_LOG_ERROR, "backend cuda: %s; the backend is unusable from now on",
                 cx->last_error);
    }
    cx->broken = true;
    return VLM_EBACKEND;
}

int cuda_error(cuda_ctx *cx, int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cx->last_error, sizeof cx->last_error, fmt, ap);
    va_end(ap);
    vlm__log(VLM_LOG_ERROR, "backend cuda: %s", cx->last_error);
    return code;
}

/* Refuse work once broken; otherwise make this thread's current device ours. */
static int enter(cuda_ctx *cx) {
    if (cx->broken) return VLM_EBACKEND;
    CUDA_TRY(cudaSetDevice(cx->device));
    return 0;
}

/* Copies and waits would end a step's recording with an error: refused while recording. */
static int enter_outside_graph(cuda_ctx *cx, const char *what) {
    if (cx->capturing)
        return cuda_error(cx, VLM_EINVAL, "%s while a step is being recorded as a graph", what);
    return enter(cx);
}

/* A row-index fault reported by a kernel since the last check, as VLM_ERANGE. */
static int take_fault(cuda_ctx *cx) {
    int f = *(volatile int *)cx->fault_host;
    if (f == CUDA_FAULT_NONE) return 0;
    *(volatile int *)cx->fault_host = CUDA_FAULT_NONE;
    return cuda_error(cx, VLM_ERANGE, "%s: a row index was out of range (that row was %s)",
                      f == CUDA_FAULT_GET_ROWS ? "get_rows" : "set_rows",
                      f == CUDA_FAULT_GET_ROWS ? "zero-filled" : "skipped");
}

static void *cuda_alloc(vlm_backend *be, size_t size) {
    cuda_ctx *cx = ctx_of(be);
    if (enter(cx)) return NULL;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, size);
    if (e == cudaSuccess) return p;
    if (e != cudaErrorMemoryAllocation) {
        cuda_fail(cx, __FILE__, __LINE__, "cudaMalloc(&p, size)", cudaGetErrorString(e));
        return NULL;
    }
    (void)cudaGetLastError(); /* out of memory is not sticky: clear it */
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    cuda_error(cx, VLM_ENOMEM, "out of device memory on GPU %d (%s): need %.1f MiB, %.1f MiB "
               "free of %.1f MiB", cx->device, cx->gpu, (double)size / 1048576.0,
               (double)free_b / 1048576.0, (double)total_b / 1048576.0);
    return NULL;
}

static void cuda_free_buffer(vlm_backend *be, void *ptr) {
    cuda_ctx *cx = ctx_of(be);
    if (!ptr) return;
    cudaSetDevice(cx->device);
    /* a failure here means the context is already broken: nothing more to report */
    if (cudaFree(ptr) != cudaSuccess) (void)cudaGetLastError();
}

static int cuda_set(vlm_backend *be, void *dst, const void *src, size_t n) {
    cuda_ctx *cx = ctx_of(be);
    int rc = enter_outside_graph(cx, "set");
    if (rc || n == 0) return rc;
    CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, cx->stream));
    return 0;
}

static int cuda_get(vlm_backend *be, void *dst, const void *src, size_t n) {
    cuda_ctx *cx = ctx_of(be);
    int rc = enter_outside_graph(cx, "get");
    if (rc) return rc;
    if (n) CUDA_TRY(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, cx->stream));
    CUDA_TRY(cudaStreamSynchronize(cx->stream));
    return take_fault(cx);
}

static int cuda_synchronize(vlm_backend *be) {
    cuda_ctx *cx = ctx_of(be);
    int rc = enter_outside_graph(cx, "synchronize");
    if (rc) return rc;
    CUDA_TRY(cudaStreamSynchronize(cx->stream));
    return take_fault(cx);
}

static bool all_f32(const vlm_op *op, int n_src) {
    for (int i = 0; i < n_src; i++)
        if (op->src[i].data && op->src[i].dtype != VLM_F32) return false;
    return true;
}

static bool cuda_supports_op(vlm_backend *be, const vlm_op *op) {
    cuda_ctx *cx = ctx_of(be);
    if (op->kind == VLM_OP_SAMPLE) return cuda_sample_supported(op);
    if (op->out.dtype != VLM_F32) return false;
    switch (op->kind) {
    case VLM_OP_MATMUL: return cuda_matmul_supported(cx, op);
    case VLM_OP_RMS_NORM:
        return op->src[0].dtype == VLM_F32 &&
               (op->src[1].dtype == VLM_BF16 || op->src[1].dtype == VLM_F32);
    case VLM_OP_ADD:
    case VLM_OP_SWIGLU:
    case VLM_OP_GELU:
    case VLM_OP_ROPE: return all_f32(op, 3);
    case VLM_OP_ATTENTION:
        return all_f32(op, 3) && (!op->src[3].data || op->src[3].dtype == VLM_I32) &&
               cuda_attention_supported(op);
    case VLM_OP_GET_ROWS:
        return (op->src[0].dtype == VLM_F32 || op->src[0].dtype == VLM_BF16 ||
                op->src[0].dtype == VLM_F16) && op->src[1].dtype == VLM_I32;
    case VLM_OP_SET_ROWS: return op->src[0].dtype == VLM_F32 && op->src[1].dtype == VLM_I32;
    case VLM_OP_SAMPLE:
    case VLM_OP_COUNT: break;
    }
    return false;
}

static int cuda_compute(vlm_backend *be, const vlm_op *op) {
    cuda_ctx *cx = ctx_of(be);
    int rc = enter(cx);
    if (rc) return rc;
    if (vlm_tensor_numel(op->out) == 0) return 0;
    cudaStream_t st = cx->stream;
    switch (op->kind) {
    case VLM_OP_MATMUL: return cuda_matmul(cx, st, op);
    case VLM_OP_RMS_NORM: return cuda_rms_norm(cx, st, op);
    case VLM_OP_ADD:
    case VLM_OP_SWIGLU:
    case VLM_OP_GELU: return cuda_elementwise(cx, st, op);
    case VLM_OP_ROPE: return cuda_rope(cx, st, op);
    case VLM_OP_ATTENTION: return cuda_attention(cx, st, op);
    case VLM_OP_GET_ROWS: return cuda_get_rows(cx, st, op);
    case VLM_OP_SET_ROWS: return cuda_set_rows(cx, st, op);
    case VLM_OP_SAMPLE: return cuda_sample(cx, st, op);
    case VLM_OP_COUNT: break;
    }
    return cuda_error(cx, VLM_EUNSUPPORTED, "op %s unknown", vlm_op_name(op->kind));
}

static const char *cuda_last_error(vlm_backend *be) {
    return ctx_of(be)->last_error;
}

/* Step graphs.  A decode step is ~15 small kernels per layer (more with several streams
 * in a batch), each a few microseconds on the GPU, so launching them one by one leaves
 * the GPU waiting on the CPU.  The step's ops are captured from the stream instead and
 * launched as one graph.  Sizes and addresses change every step (the cache grows), so
 * each step is captured again, but cudaGraphExecUpdate patches the graph made for the
 * same key in place, which costs far less than instantiating it; only a change of
 * shape (another key, a kernel more or less) instantiates anew.  Relaxed capture: the
 * decode kernel's one-time occupancy query may happen inside it.  A recording that
 * cannot be made a graph is not fatal: nothing of it ran, graphs go off, and the caller
 * issues the step again op by op (VLM_EAGAIN). */

static int cuda_graph_begin(vlm_backend *be, int64_t key) {
    cuda_ctx *cx = ctx_of(be);
    if (!cx->graphs) return 0;
    int rc = enter(cx);
    if (rc) return rc;
    if (cx->capturing)
        return cuda_error(cx, VLM_EINVAL, "graph_begin: a step is being recorded already");
    cudaError_t e = cudaStreamBeginCapture(cx->stream, cudaStreamCaptureModeRelaxed);
    if (e != cudaSuccess) { /* not fatal: the ops run as issued from now on */
        graphs_off(cx, "cudaStreamBeginCapture", cudaGetErrorString(e));
        return 0;
    }
    cx->capturing = true;
    cx->capture_key = key;
    return 0;
}

extern "C" void vlm_cuda_set_graphs(vlm_backend *be, bool on) {
    cuda_ctx *cx = ctx_of(be);
    if (!cx->capturing) cx->graphs = on;
}

/* The slot for key: its own, else an empty one, else the least recently used. */
static cuda_graph_slot *graph_slot(cuda_ctx *cx, int64_t key) {
    cuda_graph_slot *pick = &cx->graph_slots[0];
    for (int i = 0; i < CUDA_GRAPH_SLOTS; i++) {
        cuda_graph_slot *g = &cx->graph_slots[i];
        if (g->exec && g->key == key) return g;
        if (!g->exec) {
            if (pick->exec) pick = g;
        } else if (pick->exec && g->used < pick->used) {
            pick = g;
        }
    }
    if (pick->exec) {
        cudaGraphExecDestroy(pick->exec);
        pick->exec = NULL;
    }
    pick->key = key;
    return pick;
}

static int cuda_graph_end(vlm_backend *be, bool abort) {
    cuda_ctx *cx = ctx_of(be);
    if (!cx->capturing) return 0;
    cx->capturing = false;
    cudaSetDevice(cx->device); /* the capture must end whatever state the context is in */
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(cx->stream, &graph);
    if (abort) { /* the step failed while recording: nothing of it runs */
        if (graph) cudaGraphDestroy(graph);
        if (e != cudaSuccess) (void)cudaGetLastError();
        return 0;
    }
    if (e != cudaSuccess) { /* nothing of the step ran: the caller issues it again */
        if (graph) cudaGraphDestroy(graph);
        graphs_off(cx, "cudaStreamEndCapture", cudaGetErrorString(e));
        return VLM_EAGAIN;
    }
    cuda_graph_slot *g = graph_slot(cx, cx->capture_key);
    g->used = ++cx->graph_clock;
    if (g->exec) {
        cudaGraphExecUpdateResultInfo info;
        if (cudaGraphExecUpdate(g->exec, graph, &info) == cudaSuccess) {
            cx->graph_updates++;
        } else { /* another shape under this key: build it again */
            (void)cudaGetLastError();
            cudaGraphExecDestroy(g->exec);
            g->exec = NULL;
        }
    }
    if (!g->exec) {
        e = cudaGraphInstantiate(&g->exec, graph, 0);
        if (e != cudaSuccess) {
            g->exec = NULL;
            cudaGraphDestroy(graph);
            graphs_off(cx, "cudaGraphInstantiate", cudaGetErrorString(e));
            return VLM_EAGAIN;
        }
        cx->graph_builds++;
    }
    cudaGraphDestroy(graph);
    CUDA_TRY(cudaGraphLaunch(g->exec, cx->stream));
    return 0;
}

/* Release everything the context owns (any subset may exist). */
static void ctx_release(cuda_ctx *cx) {
    if (!cx) return;
    cudaSetDevice(cx->device);
    if (cx->stream) cudaStreamSynchronize(cx->stream);
    if (cx->graph_builds)
        vlm__log(VLM_LOG_INFO, "backend cuda: %lld step graphs built, %lld updated in place",
                 (long long)cx->graph_builds, (long long)cx->graph_updates);
    for (int i = 0; i < CUDA_GRAPH_SLOTS; i++)
        if (cx->graph_slots[i].exec) cudaGraphExecDestroy(cx->graph_slots[i].exec);
    if (cx->blas) cublasDestroy(cx->blas);
    cudaFree(cx->blas_ws);
    cudaFree(cx->xbf);
    cudaFree(cx->att_ws);
    if (cx->fault_host) cudaFreeHost(cx->fault_host);
    if (cx->stream) cudaStreamDestroy(cx->stream);
    (void)cudaGetLastError();
    free(cx);
}

static void cuda_free(vlm_backend *be) {
    ctx_release(ctx_of(be));
    free(be);
}

static const vlm_backend_i cuda_iface = {
    /* .name = */ "cuda",
    /* .weight_dtype = */ VLM_BF16,
    /* .free = */ cuda_free,
    /* .alloc = */ cuda_alloc,
    /* .free_buffer = */ cuda_free_buffer,
    /* .set = */ cuda_set,
    /* .get = */ cuda_get,
    /* .supports_op = */ cuda_supports_op,
    /* .compute = */ cuda_compute,
    /* .synchronize = */ cuda_synchronize,
    /* .last_error = */ cuda_last_error,
    /* .graph_begin = */ cuda_graph_begin,
    /* .graph_end = */ cuda_graph_end,
};

/* Setup failures before the context exists: message into err, code returned. */
#define SETUP_TRY(expr, what)                                                              \
    do {                                                                                   \
        cudaError_t e_ = (expr);                                                           \
        if (e_ != cudaSuccess) {                                                           \
            rc = vlm__errf(err, VLM_EBACKEND, "backend 'cuda': GPU %d (%s): %s: %s",       \
                           device, cx->gpu, what, cudaGetErrorString(e_));                 \
            goto fail;                                                                     \
        }                                                                                  \
    } while (0)

/* Create the CUDA backend on `device`.  Fails with a message in err when there is no
 * usable device (no driver, no GPU), the GPU is older than sm_80, or setup runs out of
 * memory.  Returns 0 and *out, or a negative code. */
extern "C" int vlm_backend_cuda_new(int device, vlm_backend **out, char *err) {
    *out = NULL;
    int count = 0; /* left untouched when there is no driver (docs/PLATFORM.md) */
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        (void)cudaGetLastError();
        return vlm__errf(err, VLM_ENOTFOUND, "backend 'cuda': no usable CUDA device (%s%s)",
                         e == cudaSuccess ? "no GPU found" : "cudaGetDeviceCount: ",
                         e == cudaErrorInsufficientDriver
                             ? "no NVIDIA driver, or one too old for this CUDA build"
                             : e == cudaSuccess ? "" : cudaGetErrorString(e));
    }
    if (device < 0 || device >= count)
        return vlm__errf(err, VLM_EINVAL, "backend 'cuda': device %d does not exist (%d found)",
                         device, count);
    cudaDeviceProp prop;
    e = cudaGetDeviceProperties(&prop, device);
    if (e != cudaSuccess)
        return vlm__errf(err, VLM_EBACKEND, "backend 'cuda': GPU %d: cudaGetDeviceProperties: %s",
                         device, cudaGetErrorString(e));
    if (prop.major < 8)
        return vlm__errf(err, VLM_EUNSUPPORTED, "backend 'cuda': GPU %d (%s) has compute "
                         "capability %d.%d; this build needs 8.0 or newer (it has code for "
                         "sm_80, sm_86, sm_89 and sm_90)", device, prop.name, prop.major,
                         prop.minor);

    int rc = 0;
    const char *env = getenv("VLM_CUDA_ATTN");
    vlm_backend *be = (vlm_backend *)calloc(1, sizeof *be);
    cuda_ctx *cx = (cuda_ctx *)calloc(1, sizeof *cx);
    if (!be || !cx) {
        free(be);
        free(cx);
        return vlm__errf(err, VLM_ENOMEM, "backend 'cuda': out of memory");
    }
    cx->device = device;
    snprintf(cx->gpu, sizeof cx->gpu, "%s", prop.name);
    cx->cc_major = prop.major;
    cx->cc_minor = prop.minor;
    cx->n_sm = prop.multiProcessorCount;
    cx->attn_impl = env && !strcmp(env, "simt") ? CUDA_ATTN_SIMT : CUDA_ATTN_AUTO;
    env = getenv("VLM_CUDA_GRAPHS");
    cx->graphs = env && !strcmp(env, "1");

    SETUP_TRY(cudaSetDevice(device), "cudaSetDevice");
    SETUP_TRY(cudaStreamCreateWithFlags(&cx->stream, cudaStreamNonBlocking), "creating a stream");
    {
        cublasStatus_t s = cublasCreate(&cx->blas);
        if (s != CUBLAS_STATUS_SUCCESS) {
            cx->blas = NULL;
            rc = vlm__errf(err, VLM_EBACKEND, "backend 'cuda': GPU %d (%s): cublasCreate: %s",
                           device, cx->gpu, cublasGetStatusString(s));
            goto fail;
        }
    }
    {
        size_t free_b = 0, total_b = 0;
        size_t need = BLAS_WS_BYTES + XBF_BYTES + ATT_WS_BYTES;
        cudaMemGetInfo(&free_b, &total_b);
        cudaError_t e1 = cudaMalloc(&cx->blas_ws, BLAS_WS_BYTES);
        cudaError_t e2 = e1 ? e1 : cudaMalloc((void **)&cx->xbf, XBF_BYTES);
        cudaError_t e3 = e2 ? e2 : cudaMalloc((void **)&cx->att_ws, ATT_WS_BYTES);
        if (e3 != cudaSuccess) {
            (void)cudaGetLastError();
            rc = vlm__errf(err, VLM_ENOMEM, "backend 'cuda': GPU %d (%s): cannot allocate the "
                           "%.0f MiB of workspaces: %.1f MiB free of %.1f MiB (%s)", device,
                           cx->gpu, (double)need / 1048576.0, (double)free_b / 1048576.0,
                           (double)total_b / 1048576.0, cudaGetErrorString(e3));
            goto fail;
        }
        cx->blas_ws_bytes = BLAS_WS_BYTES;
        cx->xbf_elems = (int64_t)(XBF_BYTES / sizeof(__nv_bfloat16));
        cx->att_ws_floats = (int64_t)(ATT_WS_BYTES / sizeof(float));
    }
    {
        /* setting the stream resets the workspace, so the stream goes first */
        cublasStatus_t s = cublasSetStream(cx->blas, cx->stream);
        if (s == CUBLAS_STATUS_SUCCESS)
            s = cublasSetWorkspace(cx->blas, cx->blas_ws, cx->blas_ws_bytes);
        if (s != CUBLAS_STATUS_SUCCESS) {
            rc = vlm__errf(err, VLM_EBACKEND, "backend 'cuda': GPU %d (%s): cuBLAS setup: %s",
                           device, cx->gpu, cublasGetStatusString(s));
            goto fail;
        }
    }
    SETUP_TRY(cudaHostAlloc((void **)&cx->fault_host, sizeof(int), cudaHostAllocMapped),
              "allocating the fault word");
    *cx->fault_host = CUDA_FAULT_NONE;
    SETUP_TRY(cudaHostGetDevicePointer((void **)&cx->fault_dev, cx->fault_host, 0),
              "mapping the fault word");

    be->iface = &cuda_iface;
    be->ctx = cx;
    vlm__log(VLM_LOG_INFO, "backend cuda: GPU %d (%s, sm_%d%d, %d SMs, %.1f GiB)%s%s", device,
             cx->gpu, cx->cc_major, cx->cc_minor, cx->n_sm,
             (double)prop.totalGlobalMem / 1073741824.0,
             cx->attn_impl == CUDA_ATTN_SIMT ? "; attention: simt (VLM_CUDA_ATTN)" : "",
             cx->graphs ? "; decode steps as CUDA graphs (VLM_CUDA_GRAPHS)" : "");
    *out = be;
    return 0;

fail:
    ctx_release(cx);
    free(be);
    return rc;
}
