# syntax=docker/dockerfile:1
# guise: multi-stage image. Build: `docker build -t guise .`; run with docker-compose.yml.

FROM rust:1-bookworm AS builder
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        perl make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds; the binary is copied
# out because the cached target dir is not part of the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin guise \
    && install -m 0755 target/release/guise /usr/local/bin/guise

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 guise \
    && useradd --system --uid 10001 --gid guise --home-dir /var/lib/guise \
        --shell /usr/sbin/nologin guise \
    && install -d -o guise -g guise -m 0750 /var/lib/guise
COPY --from=builder /usr/local/bin/guise /usr/local/bin/guise
ENV GUISE_DATA_DIR=/var/lib/guise
WORKDIR /var/lib/guise
VOLUME ["/var/lib/guise"]
USER guise:guise
EXPOSE 8080
ENTRYPOINT ["guise"]
CMD ["serve"]
