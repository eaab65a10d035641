# syntax=docker/dockerfile:1
# Multi-stage build: dependencies are compiled in their own cached layer.

FROM rust:1-bookworm AS build
WORKDIR /src
# 1. Dependencies only: a stub crate with the real manifests.
COPY Cargo.toml Cargo.lock ./
COPY migrations/Cargo.toml migrations/Cargo.toml
RUN mkdir -p src migrations/src benches tests/api \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && touch migrations/src/lib.rs \
 && echo 'fn main() {}' > benches/protocol.rs && touch tests/api/main.rs \
 && cargo build --release --locked --bin kefu \
 && rm -rf src migrations/src
# 2. The application.
COPY src src
COPY migrations/src migrations/src
COPY templates templates
RUN touch src/main.rs src/lib.rs migrations/src/lib.rs \
 && cargo build --release --locked --bin kefu

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin kefu \
 && mkdir -p /app/data \
 && chown kefu:kefu /app/data
WORKDIR /app
COPY --from=build /src/target/release/kefu /usr/local/bin/kefu
COPY wechat-config /app/wechat-config
ENV KEFU__SERVER__HOST=0.0.0.0 \
    KEFU__METRICS__HOST=0.0.0.0 \
    KEFU_CONFIG_DIR=/app/wechat-config
USER kefu
VOLUME ["/app/data"]
EXPOSE 8080 9464
HEALTHCHECK --interval=30s --timeout=3s CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"]
ENTRYPOINT ["/usr/local/bin/kefu"]
CMD ["serve"]
