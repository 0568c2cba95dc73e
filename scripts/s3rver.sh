#!/usr/bin/env bash
# s3rver (npm, pinned with tests/s3rver/package-lock.json), the file tests' second local
# S3-compatible store: it refuses expired presigned URLs, which moto does not check. Installs it
# into target/s3rver with `npm ci` when missing or when the lockfile changed, then runs
# tests/s3rver/server.js BUCKET, which prints `listening http://127.0.0.1:<port>` and stops when
# its standard input closes. tests/src/s3rver.rs starts it; `scripts/s3rver.sh install` only installs.
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/tests/s3rver"
DIR="$ROOT/target/s3rver"
mkdir -p "$ROOT/target"

install() {
  local stamp="$DIR/.lock.sha256" want
  want="$(cat "$SRC/package.json" "$SRC/package-lock.json" | sha256sum | cut -d' ' -f1)"
  if [[ -d "$DIR/node_modules/s3rver" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then return; fi
  echo "s3rver.sh: installing s3rver into ${DIR#"$ROOT"/} (pinned in tests/s3rver/package-lock.json)" >&2
  rm -rf "$DIR"
  mkdir -p "$DIR"
  cp "$SRC/package.json" "$SRC/package-lock.json" "$DIR/"
  (cd "$DIR" && npm ci --no-audit --no-fund --silent >&2)
  echo "$want" > "$stamp"
}

exec 9>"$ROOT/target/s3rver.lock"
flock -x 9
install
flock -u 9
[[ "${1:-}" == install ]] && exit 0
NODE_PATH="$DIR/node_modules" exec node "$SRC/server.js" "${1:-careplane-files}"
