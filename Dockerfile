# entitywatch: one binary for watcher, workers and the all-in-one `run`.
# Build stage: the crate with its bundled librdkafka (C, built by cc) and OpenSSL headers.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin entitywatch

# Runtime stage: a slim Debian with the TLS roots and OpenSSL, running as a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/entitywatch --create-home entitywatch
COPY --from=build /src/target/release/entitywatch /usr/local/bin/entitywatch
USER 10001
WORKDIR /var/lib/entitywatch
ENV ENTITYWATCH_HTTP_ADDR=0.0.0.0:8080 \
    ENTITYWATCH_LOG_FORMAT=json
ENTRYPOINT ["entitywatch"]
CMD ["run"]
