# imgedge: multi-stage build on Debian trixie with its own libvips (8.16).
#   docker build -t imgedge .
#   docker run -p 9000:9000 imgedge -enable-url-source
# Existing `docker run … h2non/imaginary -flags` lines keep working: the image answers to the
# `imaginary` command name too, and PORT=9000 is set as in imaginary's image.

FROM rust:1-slim-trixie AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvips-dev pkg-config build-essential cmake clang \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so code changes do not rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
RUN cargo build --release --locked && strip target/release/imgedge

FROM debian:trixie-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvips42t64 fonts-dejavu-core ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home imgedge
COPY --from=build /src/target/release/imgedge /usr/local/bin/imgedge
RUN ln -s /usr/local/bin/imgedge /usr/local/bin/imaginary
ENV PORT=9000 \
    MALLOC_ARENA_MAX=2 \
    VIPS_CONCURRENCY=1
USER imgedge
EXPOSE 9000
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s \
  CMD curl -fsS "http://127.0.0.1:${PORT}/health" >/dev/null || exit 1
ENTRYPOINT ["/usr/local/bin/imgedge"]
