# One image for every gallery role: `docker run IMAGE web`, `... worker`, `... notifier`.

# ---- build: dependencies in their own cached layer (cargo-chef), then the app ----
FROM rust:1.95-slim-bookworm AS chef
# cmake and nasm build the bundled libjpeg-turbo 3 (Debian's is 2.1, without the TurboJPEG 3 API).
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake nasm make g++ \
 && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Only re-run when Cargo.toml/Cargo.lock change: the slow part of every build.
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin gallery
# Only what the binary is built from, so a change to the page, the docs or deploy/ rebuilds nothing.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin gallery

# ---- runtime: slim, non-root, only what the binary needs ----
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 gallery \
 && useradd --system --uid 10001 --gid gallery --no-create-home --shell /usr/sbin/nologin gallery \
 && mkdir /data && chown gallery:gallery /data
COPY --from=builder /src/target/release/gallery /usr/local/bin/gallery
# The compose stack's one-shot `secrets` service (see docker-compose.yml).
COPY deploy/secrets-init.sh /usr/local/bin/gallery-secrets-init
COPY static /app/static
WORKDIR /app
ENV GALLERY_STATIC_DIR=/app/static \
    GALLERY_DATA_DIR=/data \
    GALLERY_LISTEN=0.0.0.0:8080 \
    GALLERY_HEALTH_LISTEN=0.0.0.0:8081
USER gallery
EXPOSE 8080
# No VOLUME: it would leave an anonymous volume behind every container. `gallery serve` run alone
# keeps its embedded backends in /data; mount a named volume there to keep them
# (`docker run -v gallery-data:/data ...`: a new volume takes /data's owner, the gallery user).
# No curl in the image: the binary probes itself. Roles without HTTP serve /healthz on 8081;
# compose overrides this per service.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["gallery", "healthcheck", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["gallery"]
# Alone (`docker run -p 8080:8080 -v gallery-data:/data IMAGE`) the image runs everything in one
# process; compose gives each service its role instead.
CMD ["serve"]
