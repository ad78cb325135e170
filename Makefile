# Two commands do all set-up:
#   make run    install what is missing, build Release, train on the embedded names
#   make test   install what is missing, build, run the whole suite with ctest
# Other targets: make build, make bench, make clean, and the robustness checks:
#   make test-sanitize  the whole suite under AddressSanitizer + UndefinedBehaviorSanitizer,
#                       the threaded code under ThreadSanitizer (test-asan, test-tsan)
#   make fuzz           each libFuzzer target of fuzz/ for FUZZ_SECONDS (see fuzz/README.md)
#   make test-arm64     cross-builds for ARM64 and runs the kernel and parity tests under
#                       qemu-user (Debian hosts)
#   make gpu-bundle     what bench/gpu_check.sh runs on a machine with a GPU but no
#                       registry: the programs built here, the data and PyTorch scripts
# Set-up follows the system: apt-get on Debian and Ubuntu, Homebrew on macOS; elsewhere
# `make deps` lists what is needed.

UNAME := $(shell uname -s)
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 2)
# More CMake settings for the build, e.g. CMAKE_FLAGS=-DMICROGPT_SHARED_DIR=/data/shared
CMAKE_FLAGS ?=
# names.txt for `make bench`: by default the one in the shared data folder (the CMake cache
# variable MICROGPT_SHARED_DIR).
NAMES ?=
# Debian 12 packages the build and the tests need.
DEB_PACKAGES ?= cmake make g++ pkg-config libcli11-dev nlohmann-json3-dev libgtest-dev libopenmpi-dev openmpi-bin \
  libcpp-httplib-dev
# The same on macOS, from Homebrew (with Apple's clang).
BREW_PACKAGES ?= cmake pkg-config cli11 nlohmann-json googletest open-mpi cpp-httplib

# What the sanitizer and fuzzing builds add: clang and its sanitizer runtimes (libFuzzer
# among them) and llvm-symbolizer for readable stack traces.
SANITIZE_PACKAGES ?= clang-14 libclang-rt-14-dev llvm-14
CLANGXX ?= clang++-14
LLVM_BIN ?= /usr/lib/llvm-14/bin

ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
# Reports end the process with an error; leaks are reported too.
SANITIZE_COMMON = -O1 -g -fno-omit-frame-pointer -D_GLIBCXX_ASSERTIONS
ASAN_FLAGS = $(SANITIZE_COMMON) -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all
FUZZ_FLAGS = $(SANITIZE_COMMON) -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
TSAN_FLAGS = $(SANITIZE_COMMON) -fsanitize=thread
ASAN_ENV = ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
TSAN_ENV = PATH="$(LLVM_BIN):$$PATH" TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
# The tests that run the fast engine on several threads (`ctest -N -R ...` lists them),
# and the test programs that hold them.
TSAN_TESTS ?= ^Batch\.|^TaskPool\.|Thread|threads|BatchSizeTrains
TSAN_TARGETS ?= microgpt fast_tests cli_tests checkpoint_tests

# ARM64 under emulation: Debian's cross compiler, the test libraries as :arm64 packages,
# qemu-user to run the results. The tests that prove the port: every kernel against
# finite differences and against the plain kernels, the fast engine against the
# reference, batches, dropout and averaging (fast_tests), and the reference engine's
# bit-exact parity with microgpt.py's outputs (reference_tests); then a run of the
# program itself.
ARM64_BUILD ?= build-arm64
ARM64_PACKAGES ?= g++-aarch64-linux-gnu qemu-user libgtest-dev:arm64
ARM64_RUN = qemu-aarch64 -L /usr/aarch64-linux-gnu
# Every test of the two programs (the others are not built for ARM64).
ARM64_TESTS ?= .

.PHONY: all deps deps-sanitize deps-arm64 deps-browser build run test bench clean test-sanitize test-asan test-tsan fuzz test-arm64 gpu-bundle

all: build

deps:
ifeq ($(UNAME),Darwin)
	@command -v brew > /dev/null || { echo "make: Homebrew is needed (https://brew.sh), then: brew install $(BREW_PACKAGES)"; exit 1; }
	@missing=""; \
	for p in $(BREW_PACKAGES); do brew list --versions $$p > /dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; brew install $$missing; fi
else
	@if ! command -v apt-get > /dev/null || ! command -v dpkg > /dev/null; then \
	  for t in cmake g++; do command -v $$t > /dev/null || { \
	    echo "make: this system has no apt-get; install a C++20 compiler, CMake, CLI11, nlohmann-json and GoogleTest"; \
	    echo "      (Debian names: $(DEB_PACKAGES))"; exit 1; }; done; \
	  exit 0; \
	fi; \
	missing=""; \
	native=$$(dpkg --print-architecture); \
	for p in $(DEB_PACKAGES); do \
	  case $$p in *:*) arch=$${p#*:};; *) arch="$$native|all";; esac; \
	  dpkg-query -W -f='$${Architecture} $${db:Status-Abbrev}\n' "$$p" 2>/dev/null | grep -Eq "^($$arch) ii" || \
	    missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi
endif

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/microgpt

test: build deps-browser
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	@grep -ho 'skipped: .*' $(BUILD)/Testing/Temporary/LastTest.log | sort -u || true

bench: build
	@command -v hyperfine > /dev/null || DEB_PACKAGES=hyperfine $(MAKE) --no-print-directory deps
	@names="$(NAMES)"; \
	[ -n "$$names" ] || names="$$(sed -n 's/^MICROGPT_SHARED_DIR:PATH=//p' $(BUILD)/CMakeCache.txt)/data/names.txt"; \
	if [ -f "$$names" ]; then bench/run_benchmarks.sh --data "$$names"; \
	else echo "skipped: $$names not found (give NAMES=path/to/names.txt)"; fi

# The browser test of the web page (tests/browser): Debian's chromium, Node.js with npm
# (when no node is installed yet), and puppeteer-core from tests/browser/package-lock.json.
deps-browser:
ifneq ($(UNAME),Darwin)
	@command -v chromium > /dev/null || DEB_PACKAGES=chromium $(MAKE) --no-print-directory deps
	@command -v npm > /dev/null || DEB_PACKAGES="nodejs npm" $(MAKE) --no-print-directory deps
endif
	@if command -v npm > /dev/null && \
	  ! [ tests/browser/node_modules/.package-lock.json -nt tests/browser/package-lock.json ]; then \
	  echo "npm ci in tests/browser"; cd tests/browser && npm ci --no-audit --no-fund; fi

deps-sanitize:
	@DEB_PACKAGES="$(DEB_PACKAGES) $(SANITIZE_PACKAGES)" $(MAKE) --no-print-directory deps

test-sanitize: test-asan test-tsan

# The whole suite (and the microgpt runs it makes) with ASan and UBSan, built by GCC.
# (Without the GPU module, which the sanitizers cannot see into, and without the CUDA
# emulation's tests, whose fibers switch stacks behind the sanitizers' backs.)
SANITIZE_CMAKE = -DMICROGPT_CUDA=OFF -DMICROGPT_CUDA_EMULATION_TESTS=OFF
test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS=$(ASAN_FLAGS)" $(SANITIZE_CMAKE) $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && $(ASAN_ENV) ctest --output-on-failure -j $(JOBS)

# The threaded tests and a threaded training run with TSan, built by clang.
test-tsan: deps-sanitize
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_CXX_COMPILER=$(CLANGXX) -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS=$(TSAN_FLAGS)" $(SANITIZE_CMAKE) $(CMAKE_FLAGS)
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target $(TSAN_TARGETS)
	cd $(TSAN_BUILD) && $(TSAN_ENV) ctest --output-on-failure -j $(JOBS) --no-tests=error -R '$(TSAN_TESTS)'
	cd $(TSAN_BUILD) && printf 'emma\nolivia\nava\nisabella\nsophia\nmia\n' > tsan_names.txt && \
	  $(TSAN_ENV) ./microgpt train --data tsan_names.txt --batch-size 8 --threads 2 --steps 20 --n-embd 32 \
	    --val-frac 0.3 --eval-every 10 --num-samples 2 --out tsan.safetensors && \
	  $(TSAN_ENV) ./microgpt eval --model tsan.safetensors --threads 2 && \
	  $(TSAN_ENV) ./microgpt sample --model tsan.safetensors --threads 2 --num-samples 2

# The libFuzzer targets of fuzz/, each for FUZZ_SECONDS; fails when one crashes.
fuzz: deps-sanitize
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_CXX_COMPILER=$(CLANGXX) -DCMAKE_BUILD_TYPE=Debug -DMICROGPT_TESTS=OFF \
	  -DMICROGPT_FUZZ=ON -DMICROGPT_MPI=OFF -DMICROGPT_SERVE=OFF -DMICROGPT_CUDA=OFF "-DCMAKE_CXX_FLAGS=$(FUZZ_FLAGS)"
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	PATH="$(LLVM_BIN):$$PATH" fuzz/run_fuzzers.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# The :arm64 packages need dpkg to know the architecture first.
deps-arm64:
	@dpkg --print-foreign-architectures | grep -qx arm64 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  echo "adding the arm64 architecture to dpkg"; $$SUDO dpkg --add-architecture arm64; \
	  $$SUDO apt-get update -q; }
	@DEB_PACKAGES="$(DEB_PACKAGES) $(ARM64_PACKAGES)" $(MAKE) --no-print-directory deps

test-arm64: deps-arm64
	cmake -S . -B $(ARM64_BUILD) -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DCMAKE_BUILD_TYPE=Release \
	  -DMICROGPT_MPI=OFF -DMICROGPT_SERVE=OFF $(CMAKE_FLAGS)
	cmake --build $(ARM64_BUILD) -j $(JOBS) --target microgpt fast_tests reference_tests
	cd $(ARM64_BUILD) && ctest --output-on-failure -j $(JOBS) --no-tests=error -R '$(ARM64_TESTS)' -E '_NOT_BUILT$$'
	cd $(ARM64_BUILD) && $(ARM64_RUN) ./microgpt --steps 200 --num-samples 3 --out arm64.safetensors | tail -4 && \
	  $(ARM64_RUN) ./microgpt sample --model arm64.safetensors --num-samples 3 --seed 1

# gpu-bundle/: the GPU engine's programs and tests built here (the CUDA toolkit needed),
# names.txt and tinyshakespeare.txt and the PyTorch scripts from the shared
# folder: what bench/gpu_check.sh needs on the lent GPU machine, which builds nothing.
GPU_BUNDLE ?= gpu-bundle
gpu-bundle: build
	@test -f $(BUILD)/libmicrogpt_cuda.so || { echo "make: this build has no CUDA module (CMake found no CUDA toolkit)"; exit 1; }
	cmake --build $(BUILD) -j $(JOBS) --target microgpt_bench fast_tests checkpoint_tests
	@shared="$$(sed -n 's/^MICROGPT_SHARED_DIR:PATH=//p' $(BUILD)/CMakeCache.txt)"; \
	rm -rf $(GPU_BUNDLE) && mkdir -p $(GPU_BUNDLE)/lib $(GPU_BUNDLE)/data $(GPU_BUNDLE)/torch && \
	cp $(BUILD)/microgpt $(BUILD)/libmicrogpt_cuda.so $(BUILD)/microgpt_bench $(BUILD)/tests/fast_tests \
	  $(BUILD)/tests/checkpoint_tests $(GPU_BUNDLE)/ && \
	cp "$$shared/data/names.txt" "$$shared/data/tinyshakespeare.txt" $(GPU_BUNDLE)/data/ && \
	cp "$$shared/bench/torch_microgpt.py" "$$shared/bench/torch_text.py" bench/torch_text_best.py $(GPU_BUNDLE)/torch/ && \
	du -sh $(GPU_BUNDLE)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD) $(ARM64_BUILD) $(GPU_BUNDLE)
