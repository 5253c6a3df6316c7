# syntax=docker/dockerfile:1
#
# miniray's container images: one Go build, one small image per role.
#
#   docker build --target collector -t miniray/collector .
#   docker build --target dashboard -t miniray/dashboard .
#   docker build --target jobs      -t miniray/jobs .
#
# Every binary is built once, statically (CGO_ENABLED=0), in the build stage; each
# runtime image is distroless "static" (CA certificates, tzdata, /etc/passwd, no
# shell, no package manager) holding only its own programs, run as the unprivileged
# user nonroot (uid 65532). One image per role keeps each small and gives each an
# entrypoint of its own; building several targets compiles only once.
#
# The programs listen on loopback unless told otherwise, which inside a container
# nobody could reach: the images set MINIRAY_* variables so that they listen on all
# the container's interfaces. Beyond loopback the programs insist on authentication,
# so a container needs its token (and the collector's embedded server its NATS
# passwords) or MINIRAY_ALLOW_INSECURE_BIND=true. docker-compose.yml runs them
# against a NATS cluster with tokens and NATS users; docs/deployment.md explains
# both set-ups and docs/security.md the credentials.

# Keep in step with the go line of go.mod (tests/compose_test.go checks it).
ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/bin/ \
        ./cmd/collector ./cmd/dashboard \
        ./examples/train ./examples/infer ./examples/tune ./examples/fail
# Directories the images write to. A named volume mounted on one of them starts as
# a copy of it, owner included, so that nonroot can write there.
RUN mkdir -p /out/data /out/spool

# distroless has no wget or curl for a health check; busybox's, built static, is
# one file. Run under the name wget, it is wget and nothing else.
FROM busybox:1.37-musl AS probe

FROM gcr.io/distroless/static-debian12:nonroot AS runtime
USER 65532:65532

# The collector: health checks and metrics on 8081. With MINIRAY_NATS_URL it
# provisions the stream on that server or cluster; without, it runs the embedded
# NATS server on 4222 with its store in /data. The spool dir is where jobs on this
# machine leave the events they could not send; docker-compose.yml shares one
# volume there between the jobs and the collector.
FROM runtime AS collector
ENV MINIRAY_HTTP=0.0.0.0:8081 \
    MINIRAY_NATS_LISTEN=0.0.0.0:4222 \
    MINIRAY_DATA_DIR=/data \
    MINIRAY_SPOOL_DIR=/var/lib/miniray/spool
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build --chown=65532:65532 /out/spool /var/lib/miniray/spool
COPY --from=probe /bin/busybox /usr/local/bin/wget
COPY --from=build /out/bin/collector /usr/local/bin/collector
EXPOSE 4222 8081
ENTRYPOINT ["/usr/local/bin/collector"]

# The dashboard: the API, the page, health checks and metrics on 8080.
FROM runtime AS dashboard
ENV MINIRAY_HTTP=0.0.0.0:8080
COPY --from=probe /bin/busybox /usr/local/bin/wget
COPY --from=build /out/bin/dashboard /usr/local/bin/dashboard
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/dashboard"]

# The example jobs: train (the default), infer, tune and fail.
FROM runtime AS jobs
ENV MINIRAY_SPOOL_DIR=/var/lib/miniray/spool
COPY --from=build --chown=65532:65532 /out/spool /var/lib/miniray/spool
COPY --from=build /out/bin/train /out/bin/infer /out/bin/tune /out/bin/fail /usr/local/bin/
CMD ["/usr/local/bin/train"]
