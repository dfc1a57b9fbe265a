# syntax=docker/dockerfile:1
#
# kmsd container image: the static binary on an empty base, running as
# user 65532, activation records in the volume /var/lib/kmsd.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t kmsd .
#   docker run -p 1688:1688 kmsd                   # kmsd serve with its defaults
#   docker run -p 1688:1688 kmsd -v -K3            # vlmcsd options, as in vlmcsd's images
#   docker run -p 1688:1688 -e CLIENT_COUNT=26 kmsd  # py-kms's container variables
#
# Every platform Go builds for without cgo works; vlmcsd's images cover:
#   docker buildx build --platform linux/amd64,linux/arm64,linux/ppc64le,linux/s390x,linux/riscv64 .

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Cross-compile on the build machine: GOARM from linux/arm/v6|v7,
# soft float for the MIPS targets (mips builds have no SQLite store). The
# timetzdata tag embeds the time zone database, so that TZ works without
# /usr/share/zoneinfo (it sets the dashboard's local-time display; logs
# stay in UTC).
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    set -e; \
    case "$TARGETVARIANT" in v[5-7]) export GOARM="${TARGETVARIANT#v}" ;; esac; \
    case "$TARGETARCH" in mips|mipsle) export GOMIPS=softfloat ;; esac; \
    CGO_ENABLED=0 GOOS="$TARGETOS" GOARCH="$TARGETARCH" \
      go build -trimpath -tags timetzdata -ldflags "-s -w -X main.version=${VERSION}" -o /out/kmsd ./cmd/kmsd
# The rest of the file system: a passwd entry for the non-root user, the
# state directory it owns, /tmp, and vlmcsd/vlmcs names for images that
# call the program by those names.
RUN set -e; \
    mkdir -p /rootfs/etc /rootfs/tmp /rootfs/usr/bin /rootfs/state; \
    echo 'root:x:0:0:root:/:/sbin/nologin' > /rootfs/etc/passwd; \
    echo 'kmsd:x:65532:65532:kmsd:/var/lib/kmsd:/sbin/nologin' >> /rootfs/etc/passwd; \
    printf 'root:x:0:\nkmsd:x:65532:\n' > /rootfs/etc/group; \
    echo 'hosts: files dns' > /rootfs/etc/nsswitch.conf; \
    chmod 1777 /rootfs/tmp; \
    chmod 0750 /rootfs/state; \
    for n in kmsd vlmcsd vlmcs; do ln -s /kmsd "/rootfs/usr/bin/$n"; done

FROM scratch
COPY --from=build /rootfs/etc /etc
COPY --from=build /rootfs/tmp /tmp
COPY --from=build /rootfs/usr /usr
COPY --from=build --chown=65532:65532 /rootfs/state /var/lib/kmsd
COPY --from=build /out/kmsd /kmsd
USER 65532:65532
WORKDIR /var/lib/kmsd
# KMSD_CONTAINER=1 makes kmsd honour py-kms's container variables (IP,
# DUALSTACK, PORT, EPID, LCID, HWID, CLIENT_COUNT, ACTIVATION_INTERVAL,
# RENEWAL_INTERVAL, LOGLEVEL, LOGFILE; TZ needs nothing more).
ENV KMSD_CONTAINER=1
VOLUME /var/lib/kmsd
EXPOSE 1688/tcp
# One real activation against the host itself, under the client machine
# ID kmsd's own health check uses, so it is never recorded. A host moved
# off 127.0.0.1:1688 (PORT, -P, -L) needs its own healthcheck.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/kmsd", "client", "127.0.0.1:1688", "-l", "64", "-c", "6b6d7364-6865-4c74-a863-6865636b0001", "-w", "kmsd-healthcheck", "--timeout", "3s"]
ENTRYPOINT ["/kmsd"]
CMD ["serve", "--db", "sqlite:/var/lib/kmsd/kmsd.db"]
