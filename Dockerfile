# connlog image. Multi-stage: Go builder (cgo on: the embedded ClickHouse
# engine is loaded through cgo), then a small Debian runtime, non-root.
#
#   docker build -t connlog .                      # production: talks to a ClickHouse server
#   docker build -t connlog:embedded --target embedded .   # + chDB (~570 MB) for the embedded engine
#
# The default image has no embedded engine: set clickhouse.addrs
# (CONNLOG_CLICKHOUSE_ADDRS) and kafka.brokers. The "embedded" target adds
# libchdb.so (fetched and verified by scripts/fetch-chdb.sh) and sets
# CONNLOG_CHDB_LIBRARY, for evaluation on one host.

ARG GO_VERSION=1.26.8
ARG DEBIAN_RELEASE=bookworm

FROM golang:${GO_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/connlog ./cmd/connlog

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 connlog \
 && useradd --system --uid 10001 --gid connlog --home-dir /var/lib/connlog --create-home --shell /usr/sbin/nologin connlog \
 && chmod 0700 /var/lib/connlog \
 && mkdir -p /etc/connlog
COPY --from=build /out/connlog /usr/local/bin/connlog
ENV CONNLOG_DATA_DIR=/var/lib/connlog \
    CONNLOG_API_LISTEN=0.0.0.0:8080
VOLUME /var/lib/connlog
EXPOSE 8080
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/connlog"]
CMD ["serve"]

# chDB for the embedded engine, fetched with npm and checked against its
# sha512 integrity by the same script `make run` uses.
FROM node:22-${DEBIAN_RELEASE}-slim AS chdb
WORKDIR /src
COPY scripts/fetch-chdb.sh scripts/
RUN CONNLOG_CACHE_DIR=/cache scripts/fetch-chdb.sh > /libchdb.path \
 && cp "$(tail -n1 /libchdb.path)" /libchdb.so

FROM runtime AS embedded
COPY --from=chdb /libchdb.so /usr/local/lib/connlog/libchdb.so
ENV CONNLOG_CHDB_LIBRARY=/usr/local/lib/connlog/libchdb.so \
    CONNLOG_EMBEDDED_CLICKHOUSE_LIBRARY=/usr/local/lib/connlog/libchdb.so

# Default target: the production image (no embedded engine).
FROM runtime AS production
