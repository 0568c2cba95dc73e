#!/usr/bin/env bash
# Release files of the careplane extension for each supported PostgreSQL version:
# dist/careplane-<version>-pg<N>-<arch>.tar.gz, each holding extension/ (the control file, the
# version's SQL, every upgrade script), lib/ (the shared library) and install.sh, which copies
# them where the target server's pg_config says (see docs/dba.md); plus SHA256SUMS.
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
  # --out-dir mirrors the build server's absolute paths; a release is laid out by what
  # pg_config names instead, with an installer that asks the target server's pg_config.
  stage="$WORK/package/stage/$name"
  rm -rf "$stage"; mkdir -p "$stage/extension" "$stage/lib"
  find "$out" -name 'careplane*.control' -o -name 'careplane--*.sql' | xargs -r cp -t "$stage/extension/"
  find "$out" -name 'careplane-*.so' | xargs -r cp -t "$stage/lib/"
  [[ -n "$(ls "$stage/lib")" && -n "$(ls "$stage/extension")" ]] || fail "pgrx package produced no files for PG $v"
  cat > "$stage/install.sh" <<EOF
#!/bin/sh
# Installs careplane $version for PostgreSQL $v: ./install.sh [path/to/pg_config]
set -e
PG_CONFIG="\${1:-pg_config}"
major="\$("\$PG_CONFIG" --version | sed 's/^PostgreSQL \([0-9]*\).*/\1/')"
[ "\$major" = "$v" ] || { echo "this release is for PostgreSQL $v; \$PG_CONFIG is \$major" >&2; exit 2; }
here="\$(cd "\$(dirname "\$0")" && pwd)"
cp "\$here"/extension/* "\$("\$PG_CONFIG" --sharedir)/extension/"
cp "\$here"/lib/* "\$("\$PG_CONFIG" --pkglibdir)/"
echo "careplane $version installed into PostgreSQL \$major; now: alter extension careplane update (or create extension careplane)"
EOF
  chmod +x "$stage/install.sh"
  tar -czf "$DIST/$name.tar.gz" -C "$WORK/package/stage" "$name"
done
(cd "$DIST" && sha256sum careplane-"$version"-pg*.tar.gz > SHA256SUMS)
bold "release files in ${DIST#"$ROOT"/}/"
ls -l "$DIST"
