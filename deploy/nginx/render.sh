#!/usr/bin/env bash
# Renders careplane.conf.template with the CAREPLANE_* settings from the environment, leaving
# nginx's own $variables untouched (as the official nginx image's template step does).
#
#   CAREPLANE_SERVER_NAME=api.example.com CAREPLANE_TLS_CERTIFICATE=… CAREPLANE_TLS_CERTIFICATE_KEY=… \
#     CAREPLANE_COMPANION_UPSTREAM=127.0.0.1:8080 deploy/nginx/render.sh > /etc/nginx/conf.d/careplane.conf
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${CAREPLANE_HTTPS_PORT:=443}" "${CAREPLANE_HTTP_PORT:=80}" "${CAREPLANE_ACCESS_LOG:=/var/log/nginx/careplane.access.log}"
export CAREPLANE_HTTPS_PORT CAREPLANE_HTTP_PORT CAREPLANE_ACCESS_LOG
missing=()
for name in CAREPLANE_SERVER_NAME CAREPLANE_TLS_CERTIFICATE CAREPLANE_TLS_CERTIFICATE_KEY CAREPLANE_COMPANION_UPSTREAM; do
  [[ -n "${!name:-}" ]] || missing+=("$name")
done
if ((${#missing[@]})); then
  echo "render.sh: set ${missing[*]}" >&2
  exit 2
fi
vars='${CAREPLANE_SERVER_NAME} ${CAREPLANE_HTTPS_PORT} ${CAREPLANE_HTTP_PORT} ${CAREPLANE_TLS_CERTIFICATE} ${CAREPLANE_TLS_CERTIFICATE_KEY} ${CAREPLANE_COMPANION_UPSTREAM} ${CAREPLANE_ACCESS_LOG}'
envsubst "$vars" < "$here/careplane.conf.template"
