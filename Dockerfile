# syntax=docker/dockerfile:1
#
# linkbot: a small non-root image (distroless: no shell, no package manager).
#
#   docker build -t linkbot:0.1.0 .
#   docker run --rm -v "$PWD/bot.toml:/etc/linkbot/bot.toml:ro" -e SLACK_BOT_TOKEN=… linkbot:0.1.0
#
# NOT BUILT HERE: the machine this project is developed on has the docker client but no Docker
# engine, so this file is checked by reading only. The Kubernetes manifests that run the image
# (manifests/) are rendered and validated by scripts/validate-manifests.sh.

# --- build ---------------------------------------------------------------------------------
FROM rust:1-slim-bookworm AS build
WORKDIR /src
# rust:slim already carries gcc and libc headers, which ring and the bundled SQLite need.
COPY . .
# Cache the registry and target dir across builds (BuildKit); copy the binary out of the cache.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin linkbot \
    && install -D -m 0755 target/release/linkbot /out/linkbot \
    && install -d -m 0750 /out/data

# --- run -----------------------------------------------------------------------------------
# distroless/cc: glibc, libgcc and CA certificates (for HTTPS to Slack, Jenkins, IAM, …).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/linkbot /usr/local/bin/linkbot
# The default SQLite location (`[store] url = "sqlite:///data/linkbot.db"`); mount a volume here.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
# /healthz, /readyz, /metrics (`[server] listen`). Slack needs no inbound port (Socket Mode).
EXPOSE 8080
# SIGTERM stops the bot cleanly; in-flight checks are resumed from the store on the next start.
STOPSIGNAL SIGTERM
ENTRYPOINT ["linkbot", "run", "--config", "/etc/linkbot/bot.toml"]
