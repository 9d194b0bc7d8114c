# Zero-OS in Go. `make demo` and `make test` are the two entry points; both
# install what they need first (make deps is idempotent).
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
BIN := $(CURDIR)/bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/zos-go/zos/internal/version.Version=$(VERSION)

# Debian packages the tests and the demo use.
APT_PACKAGES := btrfs-progs e2fsprogs util-linux iproute2 nftables redis-tools redis-server \
	qemu-system-x86 qemu-utils cpio busybox-static kmod xz-utils zstd \
	wireguard-tools iperf3 chromium chromium-driver nats-server fuse3 debootstrap \
	fdisk dosfstools mtools syslinux syslinux-common radvd ipxe-qemu binutils

# Fuzz targets run briefly by make test: package:FuzzName.
FUZZ_TARGETS := $(shell grep -rl --include='*_test.go' '^func Fuzz' internal | \
	xargs -r grep -H -o '^func Fuzz[A-Za-z0-9_]*' | \
	sed -E 's|^(.*)/[^/]+_test.go:func (Fuzz[A-Za-z0-9_]*)|./\1:\2|' | sort -u)
FUZZTIME ?= 10s

# Go tools make deps installs into .cache/bin (pinned versions).
TOOLS_BIN := $(CURDIR)/.cache/bin
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS_BIN)/staticcheck

.PHONY: all deps build test test-unit vet lint fmt-check fuzz bench demo clean image

all: build

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@$(GO) mod download
	@if ! [ -x $(STATICCHECK) ] || ! $(STATICCHECK) -version 2>/dev/null | grep -qF '($(STATICCHECK_VERSION:v%=%))'; then \
		echo "installing staticcheck $(STATICCHECK_VERSION)"; \
		GOBIN=$(TOOLS_BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) || exit 1; \
	fi
	@# The real yggdrasil daemon (the version go.mod pins) the planetary tests peer with (idempotent; .cache/bin/yggdrasil).
	@GO=$(GO) scripts/yggdrasil.sh
	@# The Debian kernel the image and the VM tests boot (idempotent; kept in .cache/kernel).
	@if ! ls .cache/kernel/linux-image-*-amd64_*.deb >/dev/null 2>&1; then \
		mkdir -p .cache/kernel && cd .cache/kernel && \
		pkg=$$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $$2; exit}'); \
		if [ -z "$$pkg" ]; then apt-get update -qq; pkg=$$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $$2; exit}'); fi; \
		echo "fetching kernel $$pkg"; apt-get download -q -o APT::Sandbox::User=root $$pkg || exit 1; \
	fi

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

fmt-check:
	@out=$$(gofmt -l cmd internal); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

lint: deps
	$(STATICCHECK) ./...

test-unit:
	$(GO) test -race -count=1 -timeout 25m ./...

fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh $(FUZZ_TARGETS)

test: deps fmt-check vet lint build test-unit fuzz

bench: deps build
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 60m ./...
	ZOS_BENCH_QSFS=1 $(GO) test -run '^$$' -bench '^BenchmarkQSFS$$' -benchtime 1x -count 1 -timeout 30m ./internal/node/primitives
	ZOS_FAULT_ROUNDS=5 $(GO) test -run '^TestFault' -count 1 -timeout 60m ./internal/e2e
	@for s in scripts/bench/*.sh; do [ -x "$$s" ] || continue; echo "== $$s"; "$$s" || exit 1; done

demo: deps build
	scripts/demo.sh

# The bootable image: kernel + initramfs in bin/image (FARM_TOKEN, FARM and
# GRID bake in farm_token=, farm= and grid=, e.g.
# make image FARM_TOKEN=$$(zosctl farm token 1) GRID=nats://10.0.2.2:4222).
IMAGE_DIR ?= $(BIN)/image
image: deps build
	$(BIN)/zosctl image build -o $(IMAGE_DIR) --kernel-cache .cache/kernel --zos $(BIN)/zos --vminit $(BIN)/vminit \
		$(if $(FARM_TOKEN),--farm-token $(FARM_TOKEN)) $(if $(FARM),--farm $(FARM)) $(if $(GRID),--grid $(GRID)) \
		$(if $(UPDATE_HUB),--update-hub $(UPDATE_HUB)) $(if $(UPDATE_ROOT),--update-root $(UPDATE_ROOT))

clean:
	rm -rf $(BIN)
