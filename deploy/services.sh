#!/usr/bin/env bash
# Starts, stops and describes every real service the tests use: PostgreSQL
# (deploy/postgres.sh) and Apache Kafka (deploy/kafka.sh).
#
#   deploy/services.sh up      start both (idempotent)
#   deploy/services.sh down    stop both
#   deploy/services.sh env     print the export lines; use: eval "$(deploy/services.sh env)"
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case "${1:-}" in
  up)
    "$DEPLOY_DIR/postgres.sh" up
    "$DEPLOY_DIR/kafka.sh" up
    say "services ready; for tests run: eval \"\$($DEPLOY_DIR/services.sh env)\""
    ;;
  down)
    # Stop both even if one fails, and report the failure.
    rc=0
    "$DEPLOY_DIR/kafka.sh" down || rc=$?
    "$DEPLOY_DIR/postgres.sh" down || rc=$?
    exit "$rc"
    ;;
  env)
    "$DEPLOY_DIR/postgres.sh" env
    "$DEPLOY_DIR/kafka.sh" env
    ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
