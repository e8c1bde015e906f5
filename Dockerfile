# syntax=docker/dockerfile:1
#
# tokenguard container image: a static binary on distroless, run as nonroot.
#
#   docker build -t tokenguard:local .
#   docker run --rm -p 8080:8080 -p 9090:9090 \
#     -v "$PWD/gateway.yaml:/etc/tokenguard/tokenguard.yaml:ro" tokenguard:local
#
# The configuration's listen and metrics_listen must bind 0.0.0.0 (not
# 127.0.0.1) to be reachable from outside the container. deploy/README.md
# has the details.

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
# No HEALTHCHECK: the image has no shell or curl, and tokenguard has no
# health-check subcommand. Orchestrators probe the metrics listener instead:
# readiness GET /readyz (503 while starting and as soon as SIGTERM arrives),
# liveness GET /healthz. SIGTERM (docker stop's default) drains; give
# docker stop -t more than drain_delay + shutdown_timeout.
ENTRYPOINT ["/tokenguard"]
CMD ["-config", "/etc/tokenguard/tokenguard.yaml"]
