# syntax=docker/dockerfile:1
# imgedge: multi-stage build on Debian trixie with its own libvips (8.16).
#   docker build -t imgedge .
#   docker run -p 9000:9000 imgedge -enable-url-source
# Existing `docker run … h2non/imaginary -flags` lines keep working: the image answers to the
# `imaginary` command name too (`docker run imgedge imaginary -enable-url-source`), and
# PORT=9000 is set as in imaginary's image (PORT wins over -p, as there).
# docs/operations.md has sizing, tuning and deployment recipes.

FROM rust:1-slim-trixie AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvips-dev libjpeg-dev libdeflate-dev libpng-dev pkg-config build-essential cmake clang \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Cargo reads every target named in Cargo.toml (benches included) before building anything.
COPY Cargo.toml Cargo.lock build.rs ./
COPY benches ./benches
COPY src ./src
# The registry and target/ live in BuildKit cache mounts, so a code change recompiles only
# imgedge, not its dependencies; the binary is copied out of the mount in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin imgedge \
 && strip -o /usr/local/bin/imgedge target/release/imgedge

FROM debian:trixie-slim
# libvips42t64 links the codecs (JPEG, PNG, WebP, TIFF, GIF, SVG, HEIF container); since
# trixie libheif's codecs are plugins that it only recommends, so AVIF (dav1d decode, aom
# encode) and HEIC (libde265 decode, x265 encode) are named here. Fonts for text watermarks,
# CA certificates for https origins, curl for the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvips42t64 \
      libheif-plugin-dav1d libheif-plugin-aomenc libheif-plugin-libde265 libheif-plugin-x265 \
      fonts-dejavu-core ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 imgedge \
 && useradd --system --uid 10001 --gid imgedge --home-dir /var/lib/imgedge --shell /usr/sbin/nologin imgedge \
 && install -d -o imgedge -g imgedge /var/lib/imgedge /var/lib/imgedge/var /var/lib/imgedge/var/cache
COPY --from=build /usr/local/bin/imgedge /usr/local/bin/imgedge
RUN ln -s imgedge /usr/local/bin/imaginary
# The default -cache-dir is ./var/cache: relative to this directory, owned by the service
# user. Mount a volume on /var/lib/imgedge/var/cache to keep the disk cache across containers.
WORKDIR /var/lib/imgedge
# MALLOC_ARENA_MAX bounds glibc's per-thread arenas (RSS follows the working set, not the
# thread count); VIPS_CONCURRENCY=1: one libvips thread per image, parallelism comes from
# serving several images at once (-cpus workers).
ENV PORT=9000 \
    MALLOC_ARENA_MAX=2 \
    VIPS_CONCURRENCY=1
USER imgedge:imgedge
EXPOSE 9000
# Liveness needs no API key even when -key is set (/health does). Shell form so ${PORT} is
# read when the check runs. (With -certfile/-keyfile the port speaks TLS: use
# `curl -fsSk https://…` in your own HEALTHCHECK.)
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${PORT}/health/live" >/dev/null || exit 1
# SIGTERM (docker stop) drains: readiness fails, -shutdown-delay, then -grace-period for
# in-flight requests. Keep `docker stop -t` above their sum + 2 s (default -grace-period 5).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/imgedge"]
