# The disburse image: one static binary that carries every role
# (api, worker, banksim, migrate, audit, ...), on an empty base.
#
#   docker build --build-arg VERSION=1.4.0 --build-arg COMMIT=$(git rev-parse HEAD) -t disburse:1.4.0 .
#   docker run --rm disburse:1.4.0 version
#
# deploy/dockerfile_test.go checks the rules below without a Docker engine:
# the final stage has no shell, runs as a non-root user, carries CA
# certificates, and the build line stamps the version into a static binary.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so a source change reuses the download layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
# CGO off and -tags nochdb (no purego binding of the embedded ClickHouse
# engine) give a statically linked binary; the image writes reports to a
# ClickHouse server (--clickhouse-addr).
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -tags nochdb \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/disburse ./cmd/disburse
# The user the final stage runs as, written as files: the final stage has
# no shell to run useradd in.
RUN mkdir -p /out/etc && \
    echo 'disburse:x:10001:10001:disburse:/nonexistent:/sbin/nologin' >/out/etc/passwd && \
    echo 'disburse:x:10001:' >/out/etc/group

FROM scratch
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="disburse" \
      org.opencontainers.image.source="https://github.com/disburse/disburse" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
# CA certificates for TLS to banks, merchants' callback endpoints, Kafka
# and Postgres.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /usr/share/zoneinfo /usr/share/zoneinfo
COPY --from=build /out/etc/passwd /out/etc/group /etc/
COPY --from=build /out/disburse /disburse
USER 10001:10001
# The roles listen on 0.0.0.0 in a container; pass the addresses as flags
# or DISBURSE_* variables (see README, Configuration).
EXPOSE 8080 8081 9090
ENTRYPOINT ["/disburse"]
CMD ["--help"]
