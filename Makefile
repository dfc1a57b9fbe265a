# kmsd build and test entry points. `make test` is what CI runs.
GO        ?= go
STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME  ?= 10s
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: all build test deps lint unit fuzz-smoke generate clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/kmsd ./cmd/kmsd

# test installs what the tests need (Go modules through the module proxy),
# then runs formatting, vet, staticcheck, the race-enabled unit tests and a
# short run of every fuzz target.
test: deps lint unit fuzz-smoke

# Debian packages the tests use: dnsmasq (a real DNS server for the SRV
# tests) and chromium (the dashboard's browser test). Installed when
# missing and running as root; otherwise those tests skip (in CI, where
# CI=true, they fail instead of skipping).
DEB_DEPS = $(if $(shell command -v dnsmasq || ls /usr/sbin/dnsmasq 2>/dev/null),,dnsmasq-base) \
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
	KMSD_REQUIRE_DNS=$${CI:-} KMSD_REQUIRE_BROWSER=$${CI:-} KMSD_TEST_OUTPUT=$(CURDIR)/test-output \
	  $(GO) test -race -count=1 -timeout 20m -skip '^TestHostile$$' ./...
	# The hostile-client suite asserts latencies, so it runs alone.
	$(GO) test -race -count=1 -timeout 10m -run '^TestHostile$$' ./internal/server

# Every Fuzz* function of every package, each for $(FUZZTIME).
fuzz-smoke:
	@set -e; for f in $$(grep -rl --include='*_test.go' '^func Fuzz' internal cmd 2>/dev/null); do \
	  pkg=./$$(dirname $$f); \
	  for t in $$(grep -o '^func Fuzz[A-Za-z0-9_]*' $$f | sed 's/^func //'); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg >/dev/null || \
	      { echo "fuzz target $$t in $$pkg failed"; $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=1s $$pkg; exit 1; }; \
	  done; \
	done

generate:
	$(GO) generate ./...

clean:
	rm -rf bin
