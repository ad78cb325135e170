# Two commands do all set-up:
#   make run    install what is missing, build Release, train on the embedded names
#   make test   install what is missing, build, run the whole suite with ctest
# Other targets: make build, make bench, make clean.

BUILD ?= build
JOBS ?= $(shell nproc)
# Debian 12 packages the build and the tests need.
DEB_PACKAGES ?= cmake make g++ libcli11-dev nlohmann-json3-dev libgtest-dev

.PHONY: all deps build run test bench clean

all: build

deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/microgpt

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build
	@command -v hyperfine > /dev/null || DEB_PACKAGES=hyperfine $(MAKE) --no-print-directory deps
	bench/run_benchmarks.sh

clean:
	rm -rf $(BUILD)
