# Multi-stage build of the `shortener` binary: build with the Rust toolchain, run on a
# slim Debian as an unprivileged user. Migrations are compiled into the binary.
FROM rust:1.92-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY console ./console
RUN cargo build --release --locked --bin shortener \
 && strip target/release/shortener

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/shortener --create-home shortener
COPY --from=build /src/target/release/shortener /usr/local/bin/shortener
USER shortener
WORKDIR /var/lib/shortener
ENV SHORTENER_LISTEN=0.0.0.0:8080
EXPOSE 8080 9100
HEALTHCHECK --interval=10s --timeout=2s CMD curl -sf http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["shortener"]
CMD ["serve"]
