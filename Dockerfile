# syntax=docker/dockerfile:1
#
# tokenguard container image: a static binary on distroless, run as nonroot.
#
#   docker build -t tokenguard:local .
#   docker run --rm -p 8080:8080 -p 9090:9090 \
#     -v "$PWD/gateway.yaml:/etc/tokenguard/tokenguard.yaml:ro" tokenguard:local
#
# The configuration's listen and metrics_listen must bind 0.0.0.0 (not
# 127.0.0.1) to be reachable from outside the container. For a file
# elsewhere, set TOKENGUARD_CONFIG: serve and the health check both read
# it. deploy/README.md has the details.

# Build stage: the Go minor version of go.mod's go directive (go 1.26.x);
# the go command fetches the exact toolchain go.mod names if the image's is
# older. Cross-compiles for the target platform (docker buildx --platform).
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags='-s -w' -o /out/tokenguard ./cmd/tokenguard

# Runtime stage: no shell, no package manager; CA certificates and tzdata
# only. User nonroot (uid 65532).
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="tokenguard" \
      org.opencontainers.image.description="Reverse proxy that admits requests with a valid OAuth 2.0 access token" \
      org.opencontainers.image.source="https://github.com/tokenguard/tokenguard" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/tokenguard /tokenguard
USER nonroot:nonroot
# 8080: the proxy (listen); 9090: /metrics, /healthz, /readyz (metrics_listen).
EXPOSE 8080 9090
ENV TOKENGUARD_CONFIG=/etc/tokenguard/tokenguard.yaml
# The image has no shell or curl: "tokenguard healthcheck" GETs /readyz on
# the file's metrics_listen (0.0.0.0 is asked on 127.0.0.1) once, within 2 s,
# and exits 0 on a 200, else 1 with the reason (docker inspect shows it).
# /readyz is 503 while starting (up to startup_wait, 10 s by default: the
# start period), while an issuer's keys are missing, and from SIGTERM on.
# Kubernetes ignores HEALTHCHECK; its manifests probe /readyz and /healthz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD ["/tokenguard", "healthcheck"]
# SIGTERM (docker stop's default) drains; give docker stop -t more than
# drain_delay + shutdown_timeout.
ENTRYPOINT ["/tokenguard"]
CMD ["serve"]
