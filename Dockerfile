# syntax=docker/dockerfile:1

# ---- build ----
FROM rust:1-bookworm AS builder
WORKDIR /build

# Dependencies first, against a dummy crate, so that source changes reuse this layer.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# The revision `tenure --version` and the environment endpoint report. The context has no .git,
# so pass it: docker build --build-arg TENURE_GIT_REVISION=$(git rev-parse --short=12 HEAD) .
# Unset, build.rs records "unknown". Declared after the dependency layer, so a new revision
# does not rebuild the dependencies.
ARG TENURE_GIT_REVISION
# build.rs sets TENURE_GIT_REVISION for the compiler (src/http/environment.rs reads it).
# sqlx::migrate! embeds migrations/ at compile time, so it must be present before the build.
# `.ci/docker-context` replays these lines in an empty directory and builds there, so a file the
# build needs and this stage does not copy fails CI.
COPY build.rs ./
COPY migrations ./migrations
COPY src ./src
# COPY keeps the context's mtimes, which may be older than the dummy build: touch so cargo rebuilds.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked

# ---- runtime ----
FROM debian:bookworm-slim

# curl is for the HEALTHCHECK.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

# The default DATABASE_URL (sqlite:tenure.db) is relative to the working directory: /data,
# owned by the unprivileged user. Mount a volume there to keep a SQLite database.
RUN useradd --system --user-group --uid 10001 --home-dir /data --no-create-home tenure \
    && install -d -o tenure -g tenure /data
WORKDIR /data

COPY --from=builder /build/target/release/tenure /usr/local/bin/tenure

USER tenure
ENV LISTEN_ADDR=0.0.0.0:8080
EXPOSE 8080

# Ready means: the database answers and every migration is applied.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS -o /dev/null http://127.0.0.1:8080/health/ready || exit 1

ENTRYPOINT ["/usr/local/bin/tenure"]
