#!/usr/bin/env bash
# gpu-check.sh — the one script to run on a GPU machine (H100/H200, nvcc, no internet):
# builds with CUDA, runs the CUDA-vs-CPU parity tests (and, where compute-sanitizer
# works, memcheck/racecheck on the small cases), `commentary check --backend cuda` on
# every fixture (the stream fixtures a second time with decode steps as CUDA graphs),
# the engine's batch and draw tests on the GPU with graphs off and on,
# then the Qwen2.5-VL-7B benchmark (random bf16 weights made in memory),
# and prints a short summary table last.  Meant to finish in under 5 minutes; every step
# has its own time limit and a failed step does not stop the later ones.
#
#   bash scripts/gpu-check.sh              on the GPU machine (exit 0: everything passed)
#   bash scripts/gpu-check.sh --fetch-deps on a Debian 12 dev machine, before: downloads
#                                          the engine's C libraries (jansson, pcre2,
#                                          utf8proc, openblas) as .deb files into .gpudeps/
#                                          (git-ignored) for machines that lack them
#
# With the device tool: fetch .gpudeps here first, then run
#   ENGINE_ONLY=1 BUDGET=480 bash scripts/gpu-check.sh   (carry [".gpudeps"], timeout_s 540)
# Everything goes to stdout; when $OUT is set, the full log and the key outputs are
# written there as they are made (gpu-check.log, build.txt, backend-ops.txt, checks.txt,
# engine.txt, bench.txt, sanitizer.txt, summary.txt), so they come back even from a run
# killed at its limit.  When 'make all' fails (the daemon's libraries — libuv, lws,
# GStreamer — may be missing there) the script builds the engine, test-backend-ops,
# bench-gpu and a `commentary` without `run` by hand (linking PyTorch's cuBLAS wheel when
# the toolkit has no cuBLAS).
# Environment: JOBS (make -j, default nproc), BENCH_DIMS (7b | 3b, default 7b),
# SKIP_SANITIZER=1, ENGINE_ONLY=1 (skip 'make all': build only what this script runs),
# BUDGET (seconds for the whole script, default 480: each step's limit is cut to fit),
# VLM_CUDA_ATTN=simt (debug: f32 attention only).
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=${JOBS:-$(nproc)}
DEPS_DIR=$ROOT/.gpudeps
ENGINE_DEBS="libjansson4 libjansson-dev libpcre2-8-0 libpcre2-dev libutf8proc2 libutf8proc-dev
             libopenblas0-pthread libopenblas-pthread-dev libopenblas-dev libgfortran5 libquadmath0"

if [ "${1:-}" = "--fetch-deps" ]; then
    mkdir -p "$DEPS_DIR"
    grep -qx '/.gpudeps/' .git/info/exclude 2>/dev/null || echo '/.gpudeps/' >>.git/info/exclude
    (cd "$DEPS_DIR" && apt-get download $ENGINE_DEBS) || exit 1
    du -sh "$DEPS_DIR"
    echo "gpu-check: carry .gpudeps with the run (the device tool's carry: [\".gpudeps\"])"
    exit 0
fi

# the logs go straight to $OUT when the device tool gives one, so that they come back
# even when the run is killed at its time limit (an EXIT trap does not run then); at most
# 8 files there (the tool's limit): scratch files go to $TMPD
TMPD=$(mktemp -d)
if [ -n "${OUT:-}" ] && [ -d "${OUT:-}" ]; then LOG=$OUT; else LOG=$TMPD/log; mkdir -p "$LOG"; fi
exec > >(tee "$LOG/gpu-check.log") 2>&1
T0=$(date +%s)
# the whole script's budget: every step's timeout is cut to what is left of it, and a step
# that cannot start with at least a minute left is skipped (the device tool allows 600 s a
# command; keep BUDGET under the run's timeout_s)
BUDGET=${BUDGET:-480}
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
tmo() { local l; l=$(left); [ "$1" -lt "$l" ] && echo "$1" || echo $(( l > 5 ? l - 5 : 1 )); }
enough() { [ "$(left)" -ge "${1:-60}" ] || { echo "gpu-check: skipped (budget): $2"; note "$2" "SKIPPED (time budget)"; FAILED=1; return 1; }; }
declare -a SUMMARY=()
FAILED=0
note() { SUMMARY+=("$(printf '%-58s %s' "$1" "$2")"); }
elapsed() { echo "$(( $(date +%s) - T0 ))s"; }
step() { echo; echo "=== [$(elapsed)] $*"; }
save() { sleep 0.5; return 0; } # let tee finish the log
trap save EXIT

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | head -3
NVCC=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
echo "nvcc: ${NVCC:-not found} $($NVCC --version 2>/dev/null | tail -n 1)"
echo "cores: $(nproc); os: $(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-?}"); cc: $(cc --version | head -n 1)"
if [ -z "$NVCC" ]; then echo "gpu-check: nvcc not found: cannot build the CUDA backend"; exit 2; fi
PY=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null && "$p" -c 'import numpy' 2>/dev/null; then PY=$(command -v "$p"); break; fi
done
echo "python with numpy (tiny test model): ${PY:-none: the engine tests will be skipped}"
export PATH=$(dirname "$NVCC"):$PATH

# ---- the engine's C libraries: the system's, or the carried .deb files ----------------
LIBS="-ljansson -lpcre2-8 -lutf8proc -lopenblas"
if ! pkg-config --exists jansson libpcre2-8 libutf8proc openblas 2>/dev/null; then
    if ls "$DEPS_DIR"/*.deb >/dev/null 2>&1; then
        step "unpacking the carried engine libraries (.gpudeps) into /tmp/gpudeps"
        for f in "$DEPS_DIR"/*.deb; do dpkg -x "$f" /tmp/gpudeps; done
        D=/tmp/gpudeps/usr
        export CPATH=$D/include:$D/include/x86_64-linux-gnu:$D/include/x86_64-linux-gnu/openblas-pthread${CPATH:+:$CPATH}
        export LIBRARY_PATH=$D/lib/x86_64-linux-gnu:$D/lib/x86_64-linux-gnu/openblas-pthread${LIBRARY_PATH:+:$LIBRARY_PATH}
        export LD_LIBRARY_PATH=$LIBRARY_PATH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    else
        echo "gpu-check: the engine's libraries (jansson, pcre2, utf8proc, openblas) are missing"
        echo "           and no .gpudeps was carried: run 'bash scripts/gpu-check.sh --fetch-deps'"
        echo "           on the dev machine and carry .gpudeps; trying the build anyway"
    fi
fi

# ---- 1. build --------------------------------------------------------------------------
# this GPU's architecture only (the Makefile's named targets otherwise): a faster build
CC_CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
ARCH_ARGS=()
case "$CC_CAP" in
    80|86|89|90) ARCH_ARGS=("CUDA_ARCH=-gencode arch=compute_$CC_CAP,code=sm_$CC_CAP") ;;
esac
step "build: make -j$JOBS all (CUDA targets: ${CC_CAP:+sm_$CC_CAP only}${CC_CAP:-sm_80 sm_86 sm_89 sm_90 + PTX})"
B0=$(date +%s)
PY_ARGS=(); [ -n "$PY" ] && PY_ARGS=("PYTHON=$PY")
if [ -z "${ENGINE_ONLY:-}" ] && timeout "$(tmo 240)" make -j"$JOBS" "${ARCH_ARGS[@]}" "${PY_ARGS[@]}" all >"$LOG/build.txt" 2>&1; then
    BUILD="make all"
else
    tail -n 25 "$LOG/build.txt"
    # the daemon's libraries (libuv, lws, GStreamer) may be missing here: build the engine
    # and what this script runs against it alone
    echo "gpu-check: 'make all' failed; building the engine, the CLI's check and the tests alone"
    BUILD="engine only"
    # as the Makefile does: nvcc may be a wrapper script, so ask it where its toolkit is
    CUDA_TOP=$("$NVCC" --dryrun -c -x cu /dev/null -o /dev/null 2>&1 | sed -n 's/^#[$] TOP=//p' | head -n 1)
    CUDA_LIBDIR=$(dirname "$(ls "$CUDA_TOP"/lib64/libcudart.so "$CUDA_TOP"/targets/*/lib/libcudart.so 2>/dev/null | head -n 1)")
    CUDA_LIBS="-L$CUDA_LIBDIR -Wl,-rpath,$CUDA_LIBDIR -lcublasLt -lcublas -lcudart -lstdc++"
    # a toolkit without cuBLAS (an image whose cuBLAS is PyTorch's pip wheel): link the
    # wheel's versioned libraries by name
    if [ ! -e "$CUDA_LIBDIR/libcublas.so" ] && [ -n "$PY" ]; then
        WDIR=$("$PY" -c 'import nvidia.cublas as c, os; print(os.path.join(list(c.__path__)[0], "lib"))' 2>/dev/null)
        BLAS=$(ls "$WDIR"/libcublas.so.* 2>/dev/null | head -n 1)
        BLASLT=$(ls "$WDIR"/libcublasLt.so.* 2>/dev/null | head -n 1)
        if [ -n "$BLAS" ] && [ -n "$BLASLT" ]; then
            echo "gpu-check: no libcublas.so in $CUDA_LIBDIR; linking $BLAS and $BLASLT"
            CUDA_LIBS="-L$CUDA_LIBDIR -Wl,-rpath,$CUDA_LIBDIR -L$WDIR -Wl,-rpath,$WDIR -l:$(basename "$BLASLT") -l:$(basename "$BLAS") -lcudart -lstdc++"
        fi
    fi
    CFL="-O2 -g -std=c11 -D_GNU_SOURCE -pthread -Iengine -I. -DVLM_HAVE_CUDA=1 -DUTF8PROC_EXPORTS"
    mkdir -p build/bin build/tests build/bench
    printf '#include "cli.h"\n#include <stdio.h>\nint cmd_run(int argc, char **argv) {\n    (void)argc; (void)argv;\n    fprintf(stderr, "run: not in this build\\n");\n    return 2;\n}\n' >"$TMPD/run_stub.c"
    # the tiny model the engine tests load (numpy only; the tests skip without it)
    timeout 60 make "${PY_ARGS[@]}" build/models/tiny-random/model.safetensors >>"$LOG/build.txt" 2>&1
    if timeout "$(tmo 240)" make -j"$JOBS" "${ARCH_ARGS[@]}" build/lib/libvlm.a >>"$LOG/build.txt" 2>&1 &&
       cc $CFL -Itests -o build/tests/test-backend-ops tests/test-backend-ops.c build/lib/libvlm.a $LIBS -lm $CUDA_LIBS &&
       cc $CFL -Itests -o build/tests/test-engine-session tests/test-engine-session.c build/lib/libvlm.a $LIBS -lm -ldl $CUDA_LIBS &&
       cc $CFL -o build/bench/bench-gpu bench/bench-gpu.c build/lib/libvlm.a $LIBS -lm $CUDA_LIBS &&
       cc $CFL -Icli -o build/bin/commentary cli/commentary.c cli/cmd-check.c cli/cmd-check-stream.c \
           cli/cmd-tokenize.c cli/refs.c "$TMPD/run_stub.c" build/lib/libvlm.a $LIBS -lm $CUDA_LIBS \
           >>"$LOG/build.txt" 2>&1; then
        :
    else
        tail -n 30 "$LOG/build.txt"
        note "build" "FAIL (see build.txt)"
        echo "gpu-check: build failed"; FAILED=1
    fi
fi
[ -f build/obj/cuda/backend.o ] || { echo "gpu-check: the CUDA backend was not built"; FAILED=1; }
echo "build ($BUILD): $(( $(date +%s) - B0 )) s"
[ $FAILED = 0 ] && note "build ($BUILD)" "ok, $(( $(date +%s) - B0 )) s"
[ $FAILED = 0 ] || { printf '%s\n' "${SUMMARY[@]}"; exit 1; }

# ---- 2. parity tests ----------------------------------------------------------------
step "test-backend-ops --perf (CUDA vs the CPU reference, then timings)"
enough 60 "test-backend-ops" && timeout "$(tmo 150)" build/tests/test-backend-ops --perf >"$LOG/backend-ops.txt" 2>&1
rc=$?
cat "$LOG/backend-ops.txt"
p=$(grep -c '^PASS' "$LOG/backend-ops.txt"); f=$(grep -c '^FAIL' "$LOG/backend-ops.txt")
s=$(grep -c '^SKIP' "$LOG/backend-ops.txt")
if [ $rc = 0 ] && [ "$f" = 0 ] && [ "$s" = 0 ]; then note "test-backend-ops" "ok: $p passed"
else note "test-backend-ops" "FAIL: $p passed, $f failed, $s skipped (exit $rc)"; FAILED=1; fi
if [ "$f" != 0 ] && [ -z "${VLM_CUDA_ATTN:-}" ]; then
    step "attention again with the f32 kernels only (VLM_CUDA_ATTN=simt), to tell kernels apart"
    VLM_CUDA_ATTN=simt timeout 60 build/tests/test-backend-ops backend_attention_matches_cpu 2>&1 | tail -n 40
fi

# ---- 3. fixtures --------------------------------------------------------------------
step "commentary check --backend cuda on every fixture"
: >"$LOG/checks.txt"
nf=0; bad=0
check() { # fixture dir, weights
    local out rc
    [ "$(left)" -ge 20 ] || { echo "skipped (budget): $1"; bad=$((bad + 1)); return; }
    out=$(timeout "$(tmo 60)" build/bin/commentary check "$1" --weights "$2" --backend cuda 2>&1)
    rc=$?
    echo "$out" >>"$LOG/checks.txt"
    nf=$((nf + 1))
    if [ $rc = 0 ]; then echo "ok   $1 ($2): $(echo "$out" | tail -n 1)"
    else
        bad=$((bad + 1))
        echo "FAIL $1 ($2), exit $rc:"; echo "$out" | grep -v PASS | head -n 30
    fi
}
for f in tests/fixtures/qwen25vl/*/; do check "${f%/}" model; done
for f in tests/fixtures/stream/*/; do check "${f%/}" model-bf16; done
for s in shared/fixtures ../shared/fixtures; do
    [ -d "$s/qwen25vl" ] || continue
    for f in "$s"/qwen25vl/*/ "$s"/stream/*/; do check "${f%/}" model-bf16; done
    break
done
if [ $bad = 0 ]; then note "commentary check --backend cuda" "ok: $nf fixtures"
else note "commentary check --backend cuda" "FAIL: $bad of $nf fixtures"; FAILED=1; fi

step "the stream fixtures again with every decode step as a CUDA graph (VLM_CUDA_GRAPHS=1)"
nf=0; bad=0
export VLM_CUDA_GRAPHS=1
for f in tests/fixtures/stream/*/; do check "${f%/}" model-bf16; done
unset VLM_CUDA_GRAPHS
if grep -q "while recording a decode step" "$LOG/checks.txt"; then
    echo "gpu-check: CUDA graphs were turned off during a check (see checks.txt): the graph runs were op by op"
    bad=$((bad + 1))
fi
if [ $bad = 0 ]; then note "... with CUDA graphs (VLM_CUDA_GRAPHS=1)" "ok: $nf fixtures"
else note "... with CUDA graphs (VLM_CUDA_GRAPHS=1)" "FAIL: $bad of $nf fixtures"; FAILED=1; fi

step "the engine's batch and draw tests on the GPU (TEST_BACKEND=cuda), graphs off and on"
: >"$LOG/engine.txt"
bad=0; nt=0
for g in 0 1; do
    for t in batch_matches_sequential batch_two_prefill_groups session_backend_draws_and_graphs; do
        [ "$(left)" -ge 30 ] || { echo "  $t: skipped (budget)"; bad=$((bad + 1)); continue; }
        VLM_CUDA_GRAPHS=$g TEST_BACKEND=cuda timeout "$(tmo 120)" build/tests/test-engine-session $t \
            >>"$LOG/engine.txt" 2>&1
        rc=$?
        nt=$((nt + 1))
        echo "  VLM_CUDA_GRAPHS=$g $t: exit $rc$([ $rc = 77 ] && echo ' (SKIP: see engine.txt)')"
        [ $rc = 0 ] || bad=$((bad + 1)) # 77 (skipped) counts too: nothing was checked
    done
done
grep -a -E '^(PASS|FAIL|SKIP)|within|mode [0-9]' "$LOG/engine.txt" | head -n 20
[ $bad = 0 ] || grep -a -E '^tests/|error' "$LOG/engine.txt" | head -n 20
if [ $bad = 0 ]; then note "engine batch/draw tests on the GPU (graphs off, on)" "ok: $nt runs"
else note "engine batch/draw tests on the GPU (graphs off, on)" "FAIL: $bad of $nt"; FAILED=1; fi

# ---- 4. benchmark -------------------------------------------------------------------
step "bench-gpu --dims ${BENCH_DIMS:-7b} (random bf16 weights; most of the time is making them)"
enough 120 "bench-gpu" && timeout "$(tmo 200)" build/bench/bench-gpu --dims "${BENCH_DIMS:-7b}" >"$LOG/bench.txt" 2>&1
rc=$?
cat "$LOG/bench.txt"
if [ $rc = 0 ] && grep -q '^| whole chunk' "$LOG/bench.txt"; then note "bench-gpu" "ok"
else note "bench-gpu" "FAIL (exit $rc)"; FAILED=1; fi

# ---- 5. memory and race checks (optional: skipped when the time is short) -----------
# one family per run, in process (no fork), small cases only; the fault and OOM tests are
# left out on purpose (they provoke exactly what the sanitizer reports)
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer \
    /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -n 1)
if [ -n "$SAN" ] && [ -z "${SKIP_SANITIZER:-}" ]; then
    for tool in memcheck racecheck; do
        fams="matmul rms_norm elementwise rope attention get_rows set_rows sample"
        [ $tool = racecheck ] && fams="attention rms_norm sample"
        step "compute-sanitizer --tool $tool, small cases: $fams"
        res=ok
        for fam in $fams; do
            if [ "$(left)" -lt 75 ]; then res="stopped early (time)"; break; fi
            t=backend_${fam}_matches_cpu
            [ $tool = memcheck ] && [ $fam = set_rows ] && t="$t backend_cuda_bad_row_index_is_erange"
            for one in $t; do
                timeout "$(tmo 60)" "$SAN" --tool $tool --error-exitcode 99 \
                    build/tests/test-backend-ops --quick $one >"$TMPD/san.log" 2>&1
                rc=$?
                cat "$TMPD/san.log" >>"$LOG/sanitizer.txt"
                if grep -q "Device not supported\|error 999" "$TMPD/san.log"; then res=unavailable; break 2; fi
                if [ $rc = 124 ]; then echo "  $one: timed out"; continue; fi
                if [ $rc = 77 ]; then echo "  $one: skipped"; continue; fi
                if [ $rc != 0 ]; then res="FAIL"; echo "  $one: exit $rc"; grep -m 20 "=====" "$TMPD/san.log"
                else echo "  $one: clean"; fi
            done
        done
        case $res in
            FAIL) note "compute-sanitizer $tool (small cases)" "FAIL (sanitizer.txt)"; FAILED=1 ;;
            unavailable) note "compute-sanitizer $tool" "unavailable on this machine" ;;
            *) note "compute-sanitizer $tool (small cases)" "$res" ;;
        esac
    done
fi

# ---- summary ------------------------------------------------------------------------
{
    echo
    echo "=== gpu-check summary ($(elapsed), $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1))"
    printf '%s\n' "${SUMMARY[@]}"
    sed -n '/^== .* dims, random bf16 weights/,$p' "$LOG/bench.txt"
    [ $FAILED = 0 ] && echo "gpu-check: PASS" || echo "gpu-check: FAIL"
} | tee "$LOG/summary.txt"
exit $FAILED
