# syntax=docker/dockerfile:1
# entitywatch: one image for the watcher (`watch`), the workers (`work`) and the all-in-one `run`.
# Docker cannot run on the machines this project is developed and tested on, so this file has not
# been built there; tests/deploy.rs checks that the CMD is a real subcommand.
#
# Build stage: rdkafka builds its bundled librdkafka with ./configure + make (not CMake: the crate
# does not enable `cmake-build`) and links the system OpenSSL (for SASL_SSL clusters) and zlib.
# The demo embeds tests/fixtures and demo/, and sqlx embeds migrations/, so they stay in the
# build context (see .dockerignore).
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential libssl-dev pkg-config zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin entitywatch \
 && install -m 0755 target/release/entitywatch /usr/local/bin/entitywatch

# Runtime stage: Debian slim with the TLS roots, OpenSSL and zlib (the binary's only shared
# libraries besides libc), running as an unprivileged user with a fixed uid so that Kubernetes'
# runAsNonRoot can verify it.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 entitywatch \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/entitywatch --create-home \
      --shell /usr/sbin/nologin entitywatch
COPY --from=build /usr/local/bin/entitywatch /usr/local/bin/entitywatch
USER 10001:10001
WORKDIR /var/lib/entitywatch
# Metrics (/metrics) and health (/healthz, /readyz) on every interface of the container.
ENV ENTITYWATCH_HTTP_ADDR=0.0.0.0:8080 \
    ENTITYWATCH_LOG_FORMAT=json
EXPOSE 8080
# Liveness for plain Docker and compose (Kubernetes uses its own probes). The image has no curl:
# bash's /dev/tcp sends the request. Assumes the default port 8080 above.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["entitywatch"]
CMD ["run"]
