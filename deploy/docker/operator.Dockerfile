# The operator image (`binlog-operator`), built from source. From the workspace root:
#
#   docker build -f deploy/docker/operator.Dockerfile -t <registry>/binlog-operator:v0.1.0 .
#
# `binlog-operator run` reconciles; `binlog-operator crd` prints the CRD. It runs as an
# unprivileged user with a read-only root (the chart mounts an emptyDir at /tmp).
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin binlog-operator

FROM debian:bookworm-slim
COPY --from=build /src/target/release/binlog-operator /binlog-operator
USER 65532:65532
ENTRYPOINT ["/binlog-operator"]
CMD ["run"]
