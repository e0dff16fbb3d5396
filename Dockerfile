# The controller's image: `make image` builds it where a container engine
# runs (docker build -t ghcr.io/pipit-dev/pipit:v0.1.0 --build-arg VERSION=v0.1.0 .).
# Every base is pinned to a version, so a rebuild of one commit gives the
# same toolchain; the final stage is scratch, holding the static binary
# `make build` produces and the CA certificates (to reach a Prometheus
# over HTTPS), run as a non-root user.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
# Modules first, so that a change of source reuses the downloaded layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The version and commit go in through the linker: the build context has
# no .git for the Go toolchain to read them from (see internal/buildinfo).
ARG VERSION=
ARG COMMIT=
# The binary of `make build`: static (CGO off), paths trimmed.
RUN GOFLAGS=-buildvcs=false make build VERSION="${VERSION}" COMMIT="${COMMIT}"

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/bin/pipit /pipit
# 65532 is the conventional "nonroot" user of distroless images; the
# Deployment also sets runAsNonRoot, which needs a numeric user here.
USER 65532:65532
ENTRYPOINT ["/pipit"]
