# The pump, drainer and binlogctl image (`tidb-binlog-rs`, what BinlogCluster pods run: a pump
# StatefulSet and drainer Deployments both use it), built from source. From the workspace root:
#
#   docker build -f deploy/docker/binlog.Dockerfile -t <registry>/tidb-binlog-rs:v0.1.0 .
#
# Binaries sit at the image root (/pump, /drainer, /binlogctl); the operator starts them through
# /bin/sh launchers (they need sh, sleep and grep, all in the Debian base). The default
# entrypoint runs a pump: `docker run tidb-binlog-rs -pd-urls=... -addr=...`.
FROM rust:1-bookworm AS build
# etcd-client's build script compiles etcd's protos with protoc and the well-known types.
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin pump --bin drainer --bin binlogctl

FROM debian:bookworm-slim
COPY --from=build /src/target/release/pump /src/target/release/drainer /src/target/release/binlogctl /
ENTRYPOINT ["/pump"]
