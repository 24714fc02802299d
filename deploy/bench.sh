#!/usr/bin/env bash
# `make bench`: start the real services, run the shipped benchmarks against
# them, stop the services. BENCHTIME (default 3x) and BENCH (default .) pass
# through to go test.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
trap '"$DEPLOY_DIR/services.sh" down || true' EXIT
"$DEPLOY_DIR/services.sh" up
eval "$("$DEPLOY_DIR/services.sh" env)"
export DISBURSE_TEST_POSTGRES_URL DISBURSE_TEST_KAFKA_BROKERS DISBURSE_REQUIRE_SERVICES=1
say "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$DEPLOY_DIR/chdb.sh" install
eval "$("$DEPLOY_DIR/chdb.sh" env)"
export DISBURSE_CHDB_DIR
go test -run '^$' -bench "${BENCH:-.}" -benchtime "${BENCHTIME:-3x}" ./ledger/... ./reports/...
