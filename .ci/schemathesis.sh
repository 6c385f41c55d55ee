#!/usr/bin/env bash
# Fuzz the REST API against its own OpenAPI schema with schemathesis: a live
# `runserver` on a throwaway SQLite database, a superuser over basic auth, and
# a time budget (SCHEMATHESIS_MAX_TIME, default 110 s). Any failure of the four
# checks exits non-zero. Usage: bash .ci/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PY="$PWD/.venv/bin/python"
WORK="$(mktemp -d)"
export DJANGO_SETTINGS_MODULE=tests.schemathesis_settings
export PYTHONPATH="$PWD:$PWD/example_project"
export DATABASE_URL="sqlite:///$WORK/api.sqlite3"
USER_NAME=fuzz
PASSWORD="fuzz-$RANDOM$RANDOM"

"$PY" -m django migrate -v 0
"$PY" -m django shell -c "
from django.contrib.auth.models import User
import squidmesh
User.objects.create_superuser('$USER_NAME', 'fuzz@example.com', '$PASSWORD')
# A few runs, so that listing and paging have something to page through.
for n in range(3):
    squidmesh.start_run('tests.three_steps', {'label': f'seed-{n}'})
"
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$PY" -m django runserver --noreload "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER=$!
cleanup() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

status=0
"$PWD/.venv/bin/schemathesis" --no-color run "http://127.0.0.1:$PORT/api/schema/?format=json" \
  --auth "$USER_NAME:$PASSWORD" \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
  --max-time "${SCHEMATHESIS_MAX_TIME:-110}" \
  --wait-for-schema 30 \
  --workers 2 \
  --request-timeout 10 \
  ${SCHEMATHESIS_ARGS:-} || status=$?
if [ "$status" -ne 0 ]; then
  echo "== schemathesis failed; server log tail:"
  tail -n 40 "$WORK/server.log"
fi
exit "$status"
