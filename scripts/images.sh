#!/usr/bin/env bash
# Builds the real Dockerfile's two targets with podman, on a machine with no container registry:
# the images its FROM lines name (debian:bookworm-slim, rust:<version>-bookworm,
# postgres:15-bookworm, redis:7-bookworm) are made here first, from Debian's own packages
# (debootstrap) and the Rust toolchain already on the machine, and tagged with those names so
# the FROM lines resolve locally.
#
#   scripts/images.sh base       podman set-up and the stand-in base images only
#   scripts/images.sh build      base, then careplane/postgres and careplane/companion (timed)
#
# Prints the build time and the image sizes. Everything it starts it stops.
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORK="$ROOT/target/images"
RUST_VERSION="$(rustc --version | awk '{print $2}' | cut -d. -f1,2)"

bold() { printf '\033[1m%s\033[0m\n' "$*"; }

podman_setup() {
  local missing=()
  for p in podman buildah runc debootstrap docker-compose uidmap golang-github-containernetworking-plugin-dnsname; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    apt-get update -qq
    # --no-install-recommends: docker-compose would otherwise pull in a Docker engine.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # dnsname: compose's services find each other by name on podman's CNI networks.
  # What podman needs on this kind of machine: runc (crun cannot run here), cgroupfs and a file
  # event log (no systemd), and file limits a Rust build inside a container can live with.
  mkdir -p /etc/containers/containers.conf.d
  cat > /etc/containers/containers.conf.d/careplane.conf <<'EOF'
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=8192:8192"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
}

have_image() { podman image exists "$1"; }

# debian:bookworm-slim — debootstrap's minimal Debian, with the host's trusted CA certificates
# and apt settings, so package clients inside a build reach the registries as the host does.
debian_base() {
  have_image docker.io/library/debian:bookworm-slim && return 0
  local rootfs="$WORK/rootfs"
  rm -rf "$rootfs"; mkdir -p "$rootfs"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
  cp /etc/apt/apt.conf.d/99artifact-registry "$rootfs/etc/apt/apt.conf.d/" 2>/dev/null || true
  cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/" 2>/dev/null && rm -f "$rootfs/etc/apt/sources.list"
  chroot "$rootfs" update-ca-certificates >/dev/null
  # What makes the official image "slim": apt keeps no caches in a layer, dpkg installs no
  # documentation, manuals or translations.
  cat > "$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
  printf 'Acquire::Languages "none";\n' > "$rootfs/etc/apt/apt.conf.d/docker-no-languages"
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' 'path-exclude /usr/share/man/*' \
    'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
    > "$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim"
  find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright -delete 2>/dev/null || true
  rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
  find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  tar -C "$rootfs" -c . | podman import --change 'CMD ["bash"]' - docker.io/library/debian:bookworm-slim >/dev/null
  rm -rf "$rootfs"
}

# derived IMAGE CONTAINERFILE-TEXT [CONTEXT] — a stand-in image built from debian:bookworm-slim.
derived() {
  local image="$1" text="$2" context="${3:-$WORK/empty}"
  have_image "$image" && return 0
  mkdir -p "$context"
  printf '%s\n' "$text" > "$WORK/Containerfile.tmp"
  podman build -q --network host --format docker -f "$WORK/Containerfile.tmp" -t "$image" "$context" >/dev/null
}

rust_image() {
  local tc context="$WORK/rust-context"
  tc="$(rustc --print sysroot)"
  if ! have_image "docker.io/library/rust:$RUST_VERSION-bookworm"; then
    rm -rf "$context"; mkdir -p "$context/rust"
    cp -a "$tc/bin" "$tc/lib" "$context/rust/"
  fi
  derived "docker.io/library/rust:$RUST_VERSION-bookworm" "FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev make pkg-config git \\
 && rm -rf /var/lib/apt/lists/*
COPY rust /usr/local/rust
ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:\$PATH CARGO_HOME=/usr/local/cargo" "$context"
  rm -rf "$context"
}

postgres_image() {
  local context="$WORK/postgres-context"
  mkdir -p "$context"
  # The official image's contract, in small: POSTGRES_PASSWORD, POSTGRES_DB, scripts in
  # /docker-entrypoint-initdb.d on first start, data in /var/lib/postgresql/data.
  cat > "$context/docker-entrypoint.sh" <<'EOF'
#!/bin/bash
set -Eeuo pipefail
export PATH="/usr/lib/postgresql/15/bin:$PATH" PGDATA="${PGDATA:-/var/lib/postgresql/data}"
if [[ "$(id -u)" == 0 ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql && chown -R postgres: "$PGDATA" /var/run/postgresql && chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  : "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
  initdb -D "$PGDATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") >/dev/null
  printf "listen_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
  printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [[ -n "${POSTGRES_DB:-}" && "$POSTGRES_DB" != postgres ]]; then createdb -U postgres "$POSTGRES_DB"; fi
  for f in /docker-entrypoint-initdb.d/*; do
    [[ -e "$f" ]] || continue
    case "$f" in
      *.sh) bash "$f" ;;
      *.sql) psql -v ON_ERROR_STOP=1 -U postgres -d "${POSTGRES_DB:-postgres}" -f "$f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec "$@"
EOF
  chmod +x "$context/docker-entrypoint.sh"
  derived docker.io/library/postgres:15-bookworm "FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-15 postgresql-contrib \\
 && rm -rf /var/lib/apt/lists/* && mkdir -p /docker-entrypoint-initdb.d
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:\$PATH PGDATA=/var/lib/postgresql/data
EXPOSE 5432
ENTRYPOINT [\"docker-entrypoint.sh\"]
CMD [\"postgres\"]" "$context"
}

redis_image() {
  local context="$WORK/redis-context"
  mkdir -p "$context"
  # As the official image's entrypoint does: a server started without a config file runs with
  # protected mode off, so other containers on the network may connect.
  cat > "$context/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = redis-server ]; then
  case "$2" in *.conf) ;; *) shift; set -- redis-server --protected-mode no "$@" ;; esac
fi
exec "$@"
EOF
  chmod +x "$context/docker-entrypoint.sh"
  derived docker.io/library/redis:7-bookworm "FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \\
 && rm -rf /var/lib/apt/lists/*
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
EXPOSE 6379
ENTRYPOINT [\"docker-entrypoint.sh\"]
CMD [\"redis-server\"]" "$context"
}

base() {
  mkdir -p "$WORK"
  bold "==> podman set-up"; podman_setup
  bold "==> debian:bookworm-slim (debootstrap)"; debian_base
  bold "==> rust:$RUST_VERSION-bookworm (this machine's toolchain)"; rust_image
  bold "==> postgres:15-bookworm"; postgres_image
  bold "==> redis:7-bookworm"; redis_image
}

build() {
  base
  local t0=$SECONDS
  bold "==> careplane/postgres and careplane/companion from ./Dockerfile"
  podman build --network host --format docker --build-arg "RUST_VERSION=$RUST_VERSION" --target postgres -t careplane/postgres .
  podman build --network host --format docker --build-arg "RUST_VERSION=$RUST_VERSION" --target companion -t careplane/companion .
  bold "built in $((SECONDS - t0))s"
  podman images --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E '^(localhost/)?careplane/'
  podman image inspect careplane/companion --format 'companion user: {{.Config.User}}  healthcheck: {{.Config.Healthcheck.Test}}'
}

case "${1:-build}" in
  base) base ;;
  build) build ;;
  *) echo "usage: $0 base|build" >&2; exit 2 ;;
esac
