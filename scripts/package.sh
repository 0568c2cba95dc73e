#!/usr/bin/env bash
# Release files of the careplane extension for each supported PostgreSQL version:
# dist/careplane-<version>-pg<N>-<arch>.tar.gz, each holding the control file, the version's
# SQL, every upgrade script, and the shared library, laid out as `pg_config --sharedir` /
# `--pkglibdir` expect (see docs/dba.md); plus SHA256SUMS.
#
#   scripts/package.sh            PG 15, 16 and 18
#   scripts/package.sh 15         only PG 15
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib-pg-versions.sh
source "$ROOT/scripts/lib-pg-versions.sh"
if (($#)); then VERSIONS=("$@"); else VERSIONS=(15 16 18); fi
DIST="$ROOT/dist"
version="$(cargo pkgid -p careplane | sed 's/.*[#@]//')"
arch="$(uname -m)"
mkdir -p "$DIST"

packages
pgrx_home "${VERSIONS[@]}"
for v in "${VERSIONS[@]}"; do
  name="careplane-$version-pg$v-$arch"
  bold "==> $name"
  out="$WORK/package/$name"
  rm -rf "$out"
  (cd pg_ext && PGRX_HOME="$WORK/pgrx-home" CARGO_TARGET_DIR="$WORK/target" \
     cargo pgrx package --pg-config "$(pg_config_of "$v")" --no-default-features --features "pg$v" --out-dir "$out")
  # --out-dir mirrors the server's absolute paths: keep them relative to its install prefix.
  tar -czf "$DIST/$name.tar.gz" -C "$out" .
done
(cd "$DIST" && sha256sum careplane-"$version"-pg*.tar.gz > SHA256SUMS)
bold "release files in ${DIST#"$ROOT"/}/"
ls -l "$DIST"
