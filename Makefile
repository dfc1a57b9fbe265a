# kmsd build and test entry points. `make test` is what CI runs.
GO        ?= go
STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME  ?= 20s
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: all build test deps lint unit fuzz-smoke generate clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/kmsd ./cmd/kmsd

# test installs what the tests need (Debian packages, Go modules through
# the module proxy), then runs formatting, vet, staticcheck, the
# race-enabled tests, a short run of every fuzz target, vet for the other
# systems, the Helm chart check and the release build of every target.
test: deps lint unit fuzz-smoke cross-vet helm-check release

# Debian packages the tests use: dnsmasq (a real DNS server for the SRV
# tests), knot (an authoritative server for RFC 2136 publishing),
# postgresql (the shared store) and chromium (the dashboard's browser test). Installed when
# missing and running as root; otherwise those tests skip (in CI, where
# CI=true, they fail instead of skipping).
DEB_DEPS = $(if $(shell command -v dnsmasq || ls /usr/sbin/dnsmasq 2>/dev/null),,dnsmasq-base) \
           $(if $(shell command -v knotd || ls /usr/sbin/knotd 2>/dev/null),,knot) \
           $(if $(wildcard /usr/lib/postgresql/*/bin/initdb),,postgresql) \
           $(if $(shell command -v chromium 2>/dev/null),,chromium)
deps:
	@if [ -n "$(strip $(DEB_DEPS))" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing $(strip $(DEB_DEPS))"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_DEPS) >/dev/null; \
	  else echo "missing $(strip $(DEB_DEPS)): those tests will be skipped"; fi; \
	fi

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt: not formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

unit:
	KMSD_REQUIRE_DNS=$${CI:-} KMSD_REQUIRE_BROWSER=$${CI:-} KMSD_REQUIRE_POSTGRES=$${CI:-} KMSD_TEST_OUTPUT=$(CURDIR)/test-output \
	  $(GO) test -race -count=1 -timeout 20m -skip '^TestHostile$$' ./...
	# The hostile-client suite asserts latencies of the host as built for
	# production, so it runs alone and without the race detector.
	$(GO) test -count=1 -timeout 10m -run '^TestHostile$$' ./internal/server
	# The ciphers' table-driven rounds, which machines without the AES
	# instructions use, against every known answer and recording.
	$(GO) test -count=1 -tags purego ./internal/kmscrypto ./internal/kms

# Every Fuzz* function of every package, each for $(FUZZTIME); see the
# script for how a real finding is told from a fuzzing-engine hiccup.
fuzz-smoke:
	GO=$(GO) FUZZTIME=$(FUZZTIME) bash .ci/fuzz-smoke

generate:
	$(GO) generate ./...

clean:
	rm -rf bin

# --- Releases, Helm chart check, cross-platform vet ---------------------------

.PHONY: release helm-check cross-vet

# Every release target as OS/ARCH; armv6/armv7 set GOARM, mips/mipsle use
# soft float (routers without an FPU; those builds have no SQLite store).
RELEASE_TARGETS ?= linux/amd64 linux/arm64 linux/ppc64le linux/s390x linux/riscv64 \
                   linux/386 linux/armv6 linux/armv7 linux/mips linux/mipsle \
                   freebsd/amd64 freebsd/arm64 darwin/amd64 darwin/arm64 \
                   windows/amd64 windows/arm64 windows/386
DIST ?= dist

# release cross-compiles a static binary per target into $(DIST), named
# kmsd-VERSION-OS-ARCH[.exe], writes $(DIST)/SHA256SUMS and checks that the
# binary for this machine reports VERSION with -V.
release:
	mkdir -p $(DIST) && rm -f $(DIST)/kmsd-* $(DIST)/SHA256SUMS
	@set -e; for t in $(RELEASE_TARGETS); do \
	  os=$${t%%/*}; arch=$${t#*/}; goarch=$$arch; goarm=; gomips=; ext=; \
	  case $$arch in armv*) goarch=arm; goarm=$${arch#armv};; mips|mipsle) gomips=softfloat;; esac; \
	  if [ $$os = windows ]; then ext=.exe; fi; \
	  out=$(DIST)/kmsd-$(VERSION)-$$os-$$arch$$ext; \
	  echo "build $$out"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$goarch GOARM=$$goarm GOMIPS=$$gomips \
	    $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $$out ./cmd/kmsd; \
	done
	cd $(DIST) && if command -v sha256sum >/dev/null; then sha256sum kmsd-$(VERSION)-*; \
	  else shasum -a 256 kmsd-$(VERSION)-*; fi > SHA256SUMS
	@self=$(DIST)/kmsd-$(VERSION)-$$($(GO) env GOOS)-$$($(GO) env GOARCH); \
	  if [ -x "$$self" ]; then \
	    got=$$("$$self" -V); \
	    if [ "$$got" != "kmsd $(VERSION)" ]; then echo "$$self -V says '$$got', want 'kmsd $(VERSION)'"; exit 1; fi; \
	    echo "$$self -V: $$got"; \
	  fi
	@echo "$$(ls $(DIST) | grep -c '^kmsd-') binaries and SHA256SUMS in $(DIST)/"

# helm-check lints the chart and renders it with its default values and
# with every ci/*-values.yaml (ingress on, inline DSN). Helm comes from the
# Go module proxy; the first run downloads and builds it (a minute or two),
# later runs start it from the build cache. Built that way helm assumes
# Kubernetes 1.20, so rendering names a current version.
HELM ?= $(GO) run helm.sh/helm/v3/cmd/helm@v3.22.0
HELM_KUBE_VERSION ?= 1.31.0
CHART = deploy/helm/kmsd
helm-check:
	$(HELM) lint --strict --kube-version $(HELM_KUBE_VERSION) $(CHART)
	@set -e; for v in $(CHART)/ci/*-values.yaml; do \
	  echo "$(HELM) lint --strict --kube-version $(HELM_KUBE_VERSION) $(CHART) -f $$v"; \
	  $(HELM) lint --strict --kube-version $(HELM_KUBE_VERSION) $(CHART) -f $$v; \
	done
	$(HELM) template kmsd $(CHART) --kube-version $(HELM_KUBE_VERSION) >/dev/null
	@set -e; for v in $(CHART)/ci/*-values.yaml; do \
	  echo "$(HELM) template kmsd $(CHART) --kube-version $(HELM_KUBE_VERSION) -f $$v"; \
	  $(HELM) template kmsd $(CHART) --kube-version $(HELM_KUBE_VERSION) -f $$v >/dev/null; \
	done

# cross-vet vets every package as it builds for the other systems kmsd
# ships for (the Windows service, the BSD and macOS socket code, and the
# mips builds without SQLite).
cross-vet:
	GOOS=windows $(GO) vet ./...
	GOOS=darwin $(GO) vet ./...
	GOOS=freebsd $(GO) vet ./...
	GOOS=linux GOARCH=mipsle $(GO) vet ./...
