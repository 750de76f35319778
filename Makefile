# imgedge: two commands for a fresh Debian/Ubuntu machine.
#   make run    install what is missing, build, serve on :8088 with testdata/ mounted
#   make test   install what is missing, run every test
# Everything the project needs is installed here, never by hand.

SHELL := /bin/bash
PORT ?= 8088
CARGO ?= cargo
# libvips with its loaders/savers, libjpeg's, libdeflate's and libpng's headers (the shim
# decodes JPEG and reads and writes PNG pixels itself),
# pkg-config + a C compiler for the shim, cmake/clang for crates that build C, fonts for text
# watermarks; haproxy for the cluster tests (tests/cluster.rs).
APT_PACKAGES := libvips-dev libjpeg-dev libdeflate-dev libpng-dev pkg-config build-essential cmake clang fonts-dejavu-core curl openssl haproxy
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps test-servers build run test bench clean

# Servers the integration tests start for real: an S3-compatible store (tests/origins.rs).
S3S_FS_VERSION := 0.14.1

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs"; exit 1; }

build: deps
	$(CARGO) build --release --locked

run: build
	@echo
	@echo "imgedge on http://localhost:$(PORT) with testdata/ mounted. Try:"
	@echo "  curl -o out.jpg 'http://localhost:$(PORT)/resize?width=300&file=scene.jpg'"
	@echo "  curl -o out.webp 'http://localhost:$(PORT)/crop?width=400&height=400&type=webp&file=scene.jpg'"
	@echo "  curl 'http://localhost:$(PORT)/info?file=badge.png'"
	@echo "  curl -o out.png -X POST --data-binary @testdata/badge.png 'http://localhost:$(PORT)/thumbnail?width=200&type=png'"
	@echo "  open http://localhost:$(PORT)/form in a browser"
	@echo
	PORT= $${CARGO_TARGET_DIR:-target}/release/imgedge -p $(PORT) -mount testdata -grace-period 1

test-servers: deps
	@command -v s3s-fs >/dev/null || [ -x "$${CARGO_HOME:-$$HOME/.cargo}/bin/s3s-fs" ] || \
	  $(CARGO) install s3s-fs --version $(S3S_FS_VERSION) --features binary --locked

test: deps test-servers
	$(CARGO) build --locked --bins
	$(CARGO) test --locked -- --test-threads=2

# The load benchmark of issue 7 (benches/load.sh, ~15 minutes on 2 cores): cold transforms vs
# in-process libvips, repeated URLs vs nginx, overload and a soak; writes BENCHMARKS.md.
# Micro-benchmarks: `cargo bench --bench ops` (and cache, scaling); see docs/performance.md.
BENCH_PACKAGES := wrk nginx
bench: deps
	@missing=""; for p in $(BENCH_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
	$(CARGO) build --release --locked
	bash benches/load.sh

clean:
	$(CARGO) clean
