# commentaryd — build. Everything lands in build/ (see README.md).
#
#   make            build the engine library, the CLI, the daemon, the tests, the
#                   benchmarks and the tiny random test model
#   make test       build, then run every test (ends with "N passed, N failed")
#   make bench      build, then run the benchmarks (figures, never pass/fail)
#   make run        install missing packages, build, start the daemon on the test source
#   make install    binaries, default model, config and systemd unit (DESTDIR, PREFIX)
#   make deps       install the Debian packages (scripts/install-deps.sh)
#   make default-model   retrain models/default from scratch (slow)
#   make clean      remove build/
#
# CUDA is optional: cuda/*.cu is built whenever nvcc and the CUDA runtime are found
# (named -gencode targets, never -arch=native); otherwise the CPU backend alone is built.

CC      ?= cc
BUILD   := build
PKGS    := jansson libpcre2-8 libutf8proc openblas
WERROR  ?= $(if $(CI),-Werror,)

CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -pthread -MMD -MP -Iengine -I. \
           -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes $(WERROR) \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread -lm

# `make` alone builds everything (rules below, such as the CUDA stamp's, come before `all`)
.DEFAULT_GOAL := all

# --- CUDA detection ------------------------------------------------------------------
ifeq ($(origin NVCC),undefined)
NVCC    := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
endif
CUDA_SRC := $(wildcard cuda/*.cu)
# nvcc on PATH may be a wrapper script (/usr/local/bin/nvcc execs the toolkit's), so
# ask nvcc itself where its toolkit is rather than guessing from its path
ifneq ($(NVCC),)
CUDA_HOME   := $(shell $(NVCC) --dryrun -c -x cu /dev/null -o /dev/null 2>&1 | \
                 sed -n 's/^\#[$$] TOP=//p' | head -n 1)
CUDA_LIBDIR := $(abspath $(firstword $(dir $(wildcard \
                 $(CUDA_HOME)/lib64/libcudart.so $(CUDA_HOME)/targets/*/lib/libcudart.so))))
endif
ifneq ($(and $(NVCC),$(CUDA_SRC),$(CUDA_LIBDIR)),)
CUDA_ARCH  := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_86,code=sm_86 \
              -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=sm_90 \
              -gencode arch=compute_90,code=compute_90
# host-side warnings as for C; CI=1 turns every nvcc/ptxas/host warning into an error
NVCCFLAGS  ?= -O3 -std=c++17 $(CUDA_ARCH) -Iengine -I. -Xcompiler -fPIC,-Wall,-Wextra \
              $(if $(CI),-Werror all-warnings,)
CFLAGS     += -DVLM_HAVE_CUDA=1
# rpath: the CUDA libraries are found at run time even when ld.so.conf does not list them
LDLIBS     += -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcublasLt -lcublas -lcudart \
              -lstdc++
CUDA_OBJ   := $(CUDA_SRC:%.cu=$(BUILD)/obj/%.o)
CUDA_STATE := built with CUDA ($(NVCC))
else
CUDA_OBJ   :=
CUDA_STATE := CUDA not found$(if $(NVCC), (nvcc at $(NVCC) but no libcudart.so),): CPU backend only
endif

# backend.c is compiled differently with CUDA: rebuild it when CUDA appears or goes
CUDA_STAMP := $(BUILD)/.cuda-state
$(shell mkdir -p $(BUILD); echo '$(CUDA_STATE)' | cmp -s - $(CUDA_STAMP) || \
        echo '$(CUDA_STATE)' > $(CUDA_STAMP))
$(BUILD)/obj/engine/backend.o: $(CUDA_STAMP)

ENGINE_SRC := $(wildcard engine/*.c)
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/obj/%.o)
GST_PKGS   := gstreamer-1.0 gstreamer-app-1.0 gstreamer-video-1.0
GST_CFLAGS := $(shell pkg-config --cflags $(GST_PKGS) 2>/dev/null)
GST_LIBS   := $(shell pkg-config --libs $(GST_PKGS) 2>/dev/null)
CLI_SRC    := $(wildcard cli/*.c)
CLI_OBJ    := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SRC   := $(wildcard tests/test-*.c)
TEST_BIN   := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC  := $(wildcard bench/*.c)
BENCH_BIN  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
LIBVLM     := $(BUILD)/lib/libvlm.a
PROTO_SRC  := $(wildcard proto/*.c)
PROTO_OBJ  := $(PROTO_SRC:%.c=$(BUILD)/obj/%.o)
LIBPROTO   := $(BUILD)/lib/libproto.a
# the daemon: server/*.c (main.c apart) is a library the tests link too
SRV_PKGS   := libuv libwebsockets libsystemd gstreamer-1.0 gstreamer-app-1.0 \
              gstreamer-video-1.0 gstreamer-rtsp-server-1.0 gstreamer-webrtc-1.0 gstreamer-sdp-1.0
SRV_CFLAGS := $(shell pkg-config --cflags $(SRV_PKGS) 2>/dev/null)
SRV_LIBS   := $(shell pkg-config --libs $(SRV_PKGS) 2>/dev/null)
SRV_SRC    := $(filter-out server/main.c,$(wildcard server/*.c))
SRV_OBJ    := $(SRV_SRC:%.c=$(BUILD)/obj/%.o)
LIBSRV     := $(BUILD)/lib/libserver.a
# the web pages (GET /, /overlay/ID, /web/NAME), compiled into the daemon
WEB_SRC    := $(sort $(wildcard web/*.html web/*.js web/*.css web/*.svg))
WEB_GEN    := $(BUILD)/gen/web_assets.c
WEB_OBJ    := $(BUILD)/obj/gen/web_assets.o
HELPER_SRC := $(wildcard tests/helpers/*.c)
HELPER_BIN := $(HELPER_SRC:tests/helpers/%.c=$(BUILD)/tests/helpers/%)

.PHONY: all test bench clean deps run install

PREFIX  ?= /usr/local
LISTEN  ?= 127.0.0.1:8080
# the shipped model once models/default exists; until then the tiny random one
MODEL   ?= $(if $(wildcard models/default/config.json),models/default,$(BUILD)/models/tiny-random)

TINY_MODEL := $(BUILD)/models/tiny-random/model.safetensors
# the Python that runs the model scripts (numpy needed); a GPU machine's numpy may live in
# another python3 (gpu-check.sh passes PYTHON=...)
PYTHON  ?= /usr/bin/python3

# all: the library, the CLI, tests, benchmarks and the tiny random test model
all: $(BUILD)/bin/commentary $(BUILD)/bin/commentaryd $(TEST_BIN) $(HELPER_BIN) $(BENCH_BIN) \
     $(TINY_MODEL)
	@echo "make: $(CUDA_STATE)"

# the tiny random-weight Qwen2.5-VL with the real tokenizer (tests, `make run` fallback)
$(TINY_MODEL): scripts/make-tiny-model.py tests/fixtures/tokenizer/qwen2.5-tokenizer.json.xz
	$(PYTHON) scripts/make-tiny-model.py $(dir $@)

# default-model: regenerate the data, train and export models/default (the shipped
# commentator of videotestsrc scenes; ~19 min on 2 cores; python3-torch, python3-torchvision,
# python3-gi: apt-get install -y python3-torch python3-torchvision python3-gi)
.PHONY: default-model
default-model:
	/usr/bin/python3 scripts/default_model/make.py --out models/default --work $(BUILD)/default-model

# deps: install the Debian packages the build and tests need (idempotent)
deps:
	bash scripts/install-deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.cu cuda/common.cuh cuda/vlm_cuda.h engine/backend.h engine/vlm_util.h \
                  engine/vlm_error.h engine/sample_draw.h
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(LIBVLM): $(ENGINE_OBJ) $(CUDA_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBPROTO): $(PROTO_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# the CLI decodes video for `commentary run` with GStreamer (never the engine itself)
$(BUILD)/obj/cli/%.o: cli/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iproto $(GST_CFLAGS) -c $< -o $@

$(BUILD)/obj/server/%.o: server/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iproto $(SRV_CFLAGS) -c $< -o $@

# web/*.html|js|css → one C file of byte arrays and a table (web/assets.h)
$(WEB_GEN): web/embed.sh $(WEB_SRC)
	@mkdir -p $(dir $@)
	sh web/embed.sh $(WEB_SRC) > $@.tmp && mv $@.tmp $@

$(WEB_OBJ): $(WEB_GEN) web/assets.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIBSRV): $(SRV_OBJ) $(WEB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/commentaryd: server/main.c $(LIBSRV) $(LIBPROTO) $(LIBVLM)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Iproto $(SRV_CFLAGS) -o $@ $< $(LIBSRV) $(LIBPROTO) $(LIBVLM) $(SRV_LIBS) $(LDLIBS)

# test helper programs (an RTSP server, clients): build/tests/helpers/NAME
$(BUILD)/tests/helpers/%: tests/helpers/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SRV_CFLAGS) -o $@ $< $(SRV_LIBS) $(LDLIBS)

$(BUILD)/bin/commentary: $(CLI_OBJ) $(LIBVLM) $(LIBPROTO)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(LIBPROTO) $(LIBVLM) $(GST_LIBS) $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/test.h $(LIBSRV) $(LIBVLM) $(LIBPROTO)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -Iproto -Iserver $(SRV_CFLAGS) -o $@ $< $(LIBSRV) $(LIBPROTO) \
	    $(LIBVLM) $(SRV_LIBS) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(LIBVLM)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIBVLM) $(LDLIBS)

# test: run every test binary and script; the last line is "N passed, N failed"
test: all
	@bash tests/run.sh

# bench: print the engine's speed figures on this machine (never pass/fail)
bench: all
	@bash bench/run.sh

# run: install missing packages, build, start the daemon on the built-in test source
run:
	bash scripts/install-deps.sh
	$(MAKE) all
	@echo "commentaryd: subscribe with  python3 scripts/subscribe.py ws://$(LISTEN)/v1/streams/demo/events"
	@echo "             or open  http://$(LISTEN)/v1/streams/demo/captions.vtt ,  http://$(LISTEN)/metrics"
	$(BUILD)/bin/commentaryd --config config/commentaryd.json --listen $(LISTEN) --model $(MODEL)

# install: binaries, the default model, config and the systemd unit (DESTDIR honoured)
install: all
	install -D -m 0755 $(BUILD)/bin/commentaryd $(DESTDIR)$(PREFIX)/bin/commentaryd
	install -D -m 0755 $(BUILD)/bin/commentary $(DESTDIR)$(PREFIX)/bin/commentary
	install -d $(DESTDIR)$(PREFIX)/share/commentaryd/models/default
	install -m 0644 $(MODEL)/* $(DESTDIR)$(PREFIX)/share/commentaryd/models/default/
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/commentaryd/README.md
	install -d $(DESTDIR)/etc/systemd/system
	sed 's|/usr/local|$(PREFIX)|g' systemd/commentaryd.service \
	    > $(DESTDIR)/etc/systemd/system/commentaryd.service
	@if [ ! -f $(DESTDIR)/etc/commentaryd/commentaryd.json ]; then \
	    install -d $(DESTDIR)/etc/commentaryd && \
	    sed 's|"model": *"[^"]*"|"model": "$(PREFIX)/share/commentaryd/models/default"|' \
	        config/commentaryd.json > $(DESTDIR)/etc/commentaryd/commentaryd.json; \
	else echo "install: keeping the existing /etc/commentaryd/commentaryd.json"; fi
	@echo "install: done; systemctl daemon-reload && systemctl enable --now commentaryd"

# clean: remove everything the build made
clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
