# syntax=docker/dockerfile:1
#
# keycard as a container: a static binary on distroless, non-root, friendly
# to a read-only root file system. All state (the bbolt database, its ops
# token, backups) lives on the volume /var/lib/keycard. See
# docs/operations.md "Docker".
#
#   docker build \
#     --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse HEAD) \
#     --build-arg DATE=$(git show -s --format=%cI HEAD) \
#     -t keycard .
#
# Pin both base images by digest in your own registry for a reproducible
# build (FROM golang:1.26-bookworm@sha256:…).

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Dependencies first: a code change does not download modules again.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
ARG DATE=unknown
# CGO_ENABLED=0: a static binary for a base image without libc.
# -trimpath: no builder paths in the binary. -buildvcs=false: the context has
# no .git (see .dockerignore), so the version comes from the build args.
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w \
        -X keycard/internal/buildinfo.version=${VERSION} \
        -X keycard/internal/buildinfo.commit=${COMMIT} \
        -X keycard/internal/buildinfo.date=${DATE}" \
      -o /out/keycard . \
 && mkdir -p /out/state/keycard/backups \
 && chmod -R 0700 /out/state/keycard

# distroless/static: CA certificates (Slack, the IdPs and the audit stream
# are HTTPS), tzdata and /etc/passwd, no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/keycard /usr/local/bin/keycard
# The state directory, owned by the runtime user: a new named volume is
# seeded from it with this ownership.
COPY --from=build --chown=65532:65532 /out/state/ /var/lib/
ENV KEYCARD_DB=/var/lib/keycard/keycard.db \
    KEYCARD_BACKUP_DIR=/var/lib/keycard/backups \
    KEYCARD_POLICY=/etc/keycard/policy.yaml \
    KEYCARD_LOG_FORMAT=json \
    TMPDIR=/var/lib/keycard
VOLUME /var/lib/keycard
WORKDIR /var/lib/keycard
# 65532 is distroless's "nonroot"; numeric so that runAsNonRoot can check it.
USER 65532:65532
# No EXPOSE: the ops listener (/healthz, /readyz, /metrics, POST /backup)
# stays on KEYCARD_HTTP_ADDR=127.0.0.1:8080 unless the operator opts in with
# -e KEYCARD_HTTP_ADDR=0.0.0.0:8080 -p 8080:8080 (docs/operations.md).
ENTRYPOINT ["/usr/local/bin/keycard"]
CMD ["serve"]
