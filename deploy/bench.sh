#!/usr/bin/env bash
# `make bench`: start the real services (PostgreSQL with its durable
# defaults, synchronous_commit on; Apache Kafka, produced to with acks=all;
# the embedded ClickHouse engine), run `disburse bench` on the scenarios of
# issue 16's targets and the Go micro-benchmarks, then stop the services
# (DISBURSE_KEEP_SERVICES=1 keeps them, e.g. when others use them).
#
#   SCENARIOS   which scenarios to run, space-separated (default: all, in
#               the order below): batch100k merchants8 singles64 baseline go
#   BENCH_OUT   directory for each scenario's JSON (default .state/bench)
#   BENCH_ARGS  extra flags for every `disburse bench` (e.g. --stages processes)
#   EIGHT_ITEMS items per merchant of the 8-merchant scenario (default 25000:
#               long enough for a 60 s window at the target rate)
#   BENCH, BENCHTIME  pass through to the Go benchmarks (defaults . and 3x)
#
# docs/benchmarks.md records the figures with the machine and the date.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
if [[ "${DISBURSE_KEEP_SERVICES:-}" != 1 ]]; then
  trap '"$DEPLOY_DIR/services.sh" down || true' EXIT
fi
"$DEPLOY_DIR/services.sh" up
eval "$("$DEPLOY_DIR/services.sh" env)"
export DISBURSE_TEST_POSTGRES_URL DISBURSE_TEST_KAFKA_BROKERS DISBURSE_REQUIRE_SERVICES=1
say "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$DEPLOY_DIR/chdb.sh" install
eval "$("$DEPLOY_DIR/chdb.sh" env)"
export DISBURSE_CHDB_DIR

go build -o bin/disburse ./cmd/disburse
out="${BENCH_OUT:-$STATE_DIR/bench}"
mkdir -p "$out"

# scenario NAME FLAGS...: one `disburse bench`, its table on stdout and its
# JSON in $out/NAME.json.
scenario() {
  local name="$1"; shift
  local args=(--postgres-url "$DISBURSE_TEST_POSTGRES_URL" --kafka-brokers "$DISBURSE_TEST_KAFKA_BROKERS" "$@")
  # shellcheck disable=SC2206 # BENCH_ARGS is a list of flags
  args+=(${BENCH_ARGS:-})
  say "scenario $name: bin/disburse bench ${args[*]:4}"
  bin/disburse bench "${args[@]}" --json-out "$out/$name.json"
  say "scenario $name: JSON in $out/$name.json"
}

for s in ${SCENARIOS:-batch100k merchants8 singles64 baseline go}; do
  case "$s" in
    # One merchant's 100,000-item batch: time to 202, to every item
    # terminal, to every callback delivered.
    batch100k) scenario batch100k --merchants 1 --batch-items 100000 ;;
    # Eight merchants at once: the sustained completed payouts/s (best 60 s).
    merchants8) scenario merchants8 --merchants 8 --batch-items "${EIGHT_ITEMS:-25000}" ;;
    # Single payouts of one merchant through one API instance, 64 clients.
    singles64) scenario singles64 --merchants 1 --batch-items 0 --singles 20000 --clients 64 ;;
    # The naive baseline beside the set-based pipeline, same invocation.
    baseline) scenario baseline --merchants 1 --batch-items 10000 --baseline ;;
    # The micro-benchmarks of the ledger's debits and the reports' writes.
    go) go test -run '^$' -bench "${BENCH:-.}" -benchtime "${BENCHTIME:-3x}" ./ledger/... ./reports/... ;;
    *) die "unknown scenario $s (known: batch100k merchants8 singles64 baseline go)" ;;
  esac
done
