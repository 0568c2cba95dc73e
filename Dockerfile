# careplane images. Targets:
#   postgres   PostgreSQL 15 with the careplane extension installed (for docker-compose or as a
#              base for a Supabase-compatible database image)
#   companion  the careplane-companion binary, with migrations/, sql/ and the seed for `migrate`
#
#   docker build --target postgres  -t careplane/postgres .
#   docker build --target companion -t careplane/companion .

ARG RUST_VERSION=1.95
ARG PG_MAJOR=15

FROM rust:${RUST_VERSION}-bookworm AS builder
ARG PG_MAJOR
RUN apt-get update \
 && apt-get install -y --no-install-recommends "postgresql-server-dev-${PG_MAJOR}" "postgresql-${PG_MAJOR}" libclang-dev clang \
 && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-pgrx --version 0.18.0 --locked \
 && cargo pgrx init "--pg${PG_MAJOR}" "/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config"
WORKDIR /src
COPY . .
RUN cd pg_ext && cargo pgrx package --pg-config "/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config" \
 && cd .. && cargo build --release --locked -p careplane-companion

FROM postgres:${PG_MAJOR}-bookworm AS postgres
ARG PG_MAJOR
COPY --from=builder /src/target/release/careplane-pg${PG_MAJOR}/usr/share/postgresql/${PG_MAJOR}/extension/ /usr/share/postgresql/${PG_MAJOR}/extension/
COPY --from=builder /src/target/release/careplane-pg${PG_MAJOR}/usr/lib/postgresql/${PG_MAJOR}/lib/ /usr/lib/postgresql/${PG_MAJOR}/lib/

FROM debian:bookworm-slim AS companion
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && useradd --system --uid 10001 --home /app careplane
WORKDIR /app
COPY --from=builder /src/target/release/careplane-companion /usr/local/bin/careplane-companion
COPY migrations/ /app/migrations/
COPY sql/ /app/sql/
COPY supabase/seed.sql /app/supabase/seed.sql
USER careplane
ENV BIND_ADDR=0.0.0.0:8080 LOG_FORMAT=json
EXPOSE 8080
# Healthy when it serves and its database, the careplane extension and Redis answer
# (/health/detailed; the image has no curl, the binary asks itself).
HEALTHCHECK --interval=10s --timeout=6s --start-period=10s --retries=3 CMD ["careplane-companion", "health"]
ENTRYPOINT ["careplane-companion"]
CMD ["serve"]
