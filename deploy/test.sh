#!/usr/bin/env bash
# The full test run, as CI and 'make test' do it: start the real services,
# run every package's tests with the race detector against them, and stop
# the services again whatever happens. A test that would skip for want of a
# service fails instead (DISBURSE_REQUIRE_SERVICES=1).
#
# Extra arguments go to 'go test' (e.g. deploy/test.sh -run TestLedger).
# DISBURSE_KEEP_SERVICES=1 leaves the services running afterwards.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

stop_services() {
  if [[ "${DISBURSE_KEEP_SERVICES:-}" == 1 ]]; then
    say "leaving services running (DISBURSE_KEEP_SERVICES=1)"
  else
    say "stopping services"
    "$DEPLOY_DIR/services.sh" down || true
  fi
}
trap stop_services EXIT

start=$SECONDS
say "starting services"
"$DEPLOY_DIR/services.sh" up
eval "$("$DEPLOY_DIR/services.sh" env)"
export DISBURSE_TEST_POSTGRES_URL DISBURSE_TEST_KAFKA_BROKERS
"$DEPLOY_DIR/chdb.sh" install # the ClickHouse engine for the reports tests
eval "$("$DEPLOY_DIR/chdb.sh" env)"
"$DEPLOY_DIR/promtool.sh" install # promtool for the alert rule tests (deploy/prometheus)
"$DEPLOY_DIR/browser.sh" install # Chromium and axe-core for the dashboard's browser tests
eval "$("$DEPLOY_DIR/browser.sh" env)"
export DISBURSE_CHROMIUM DISBURSE_AXE_JS
export DISBURSE_CHDB_DIR
export DISBURSE_REQUIRE_SERVICES=1

say "running go test -race -count=1 -timeout 25m ./... (services up in $((SECONDS - start))s)"
rc=0
go test -race -count=1 -timeout 25m "$@" ./... || rc=$?
if [[ $rc -eq 0 ]]; then
  say "tests passed in $((SECONDS - start))s"
else
  say "tests FAILED (exit $rc) after $((SECONDS - start))s"
fi
exit "$rc"
