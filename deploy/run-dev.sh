#!/usr/bin/env bash
# `make run`: build disburse and start `disburse dev`, the whole service in
# one process. Postgres is embedded (fetched once and cached) unless
# --postgres-url or DISBURSE_POSTGRES_URL names one. Where the embedded
# server cannot run (it cannot be fetched, or initdb refuses to run as
# root), this falls back to the local PostgreSQL of deploy/postgres.sh and
# says so. The ClickHouse engine of the reports (chDB) is installed once by
# deploy/chdb.sh; without it (no python3 with pip) the demo runs without
# reports. Extra arguments go to `disburse dev` (e.g. --sandbox-key ...).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

say "building bin/disburse"
go build -o bin/disburse ./cmd/disburse
if "$DEPLOY_DIR/chdb.sh" install; then
  eval "$("$DEPLOY_DIR/chdb.sh" env)"
  export DISBURSE_CHDB_DIR
else
  say "the reports engine could not be installed; the demo runs without reports"
fi

for a in "$@"; do
  [[ "$a" == --postgres-url* ]] && exec bin/disburse dev "$@"
done
[[ -n "${DISBURSE_POSTGRES_URL:-}" ]] && exec bin/disburse dev "$@"

fallback() {
  say "$1"
  shift
  say "falling back to the local PostgreSQL of deploy/postgres.sh (installed and started if needed)"
  local started=0
  port_open 127.0.0.1 "${DISBURSE_PG_PORT:-55432}" || started=1
  "$DEPLOY_DIR/postgres.sh" up
  eval "$("$DEPLOY_DIR/postgres.sh" env)"
  local rc=0
  bin/disburse dev --postgres-url "$DISBURSE_TEST_POSTGRES_URL" "$@" || rc=$?
  if [[ $started == 1 ]]; then
    say "stopping the local PostgreSQL this command started"
    "$DEPLOY_DIR/postgres.sh" down || true
  fi
  exit "$rc"
}

if [[ "$(id -u)" == 0 ]]; then
  fallback "embedded PostgreSQL cannot run as root (its initdb refuses)" "$@"
fi
rc=0
bin/disburse dev "$@" || rc=$?
if [[ $rc == 3 ]]; then
  fallback "embedded PostgreSQL could not start (see above)" "$@"
fi
exit "$rc"
