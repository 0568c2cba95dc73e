#!/usr/bin/env bash
# moto's S3 server for the file tests: installs moto (pinned in scripts/moto-requirements.txt)
# into a virtualenv under target/ when missing or when that file changed, then runs
# scripts/moto_server.py, which prints `listening http://127.0.0.1:<port>` and stops when its
# standard input closes. tests/src/moto.rs starts it; `scripts/moto.sh install` only installs.
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQUIREMENTS="$ROOT/scripts/moto-requirements.txt"
VENV="$ROOT/target/moto-venv"
mkdir -p "$ROOT/target"

install() {
  local stamp="$VENV/.requirements.sha256" want
  want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
  if [[ -x "$VENV/bin/python" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then return; fi
  echo "moto.sh: installing moto into ${VENV#"$ROOT"/} (pinned in ${REQUIREMENTS#"$ROOT"/})" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS" >&2
  echo "$want" > "$stamp"
}

# Tests start several servers at once: one installs, the others wait for it.
exec 9>"$ROOT/target/moto-venv.lock"
flock -x 9
install
flock -u 9
[[ "${1:-}" == install ]] && exit 0
exec "$VENV/bin/python" "$ROOT/scripts/moto_server.py"
