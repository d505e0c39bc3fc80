#!/usr/bin/env bash
# The repository benchmark (operations.md, "Performance targets"): builds the gateway and the
# benchmark in release, then runs the benchmark on SQLite and, with --pg, also on PostgreSQL +
# Redis (127.0.0.1:5432 / 6379), with the local postgres and redis-server processes moved to the
# load generator's core for the run (TOKENONE_BENCH_PIN_SERVICES, empty to leave them where they
# are), so they do not share the gateway's core. Any other argument is passed to tokenone-bench
# (e.g. --duration 20; see `target/release/tokenone-bench --help`). Not part of `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

pg=0
args=()
for a in "$@"; do
  if [ "$a" = "--pg" ]; then pg=1; else args+=("$a"); fi
done

cargo build --release -p tokenone -p tokenone-bench

bench=target/release/tokenone-bench
"$bench" --gateway target/release/tokenone "${args[@]+"${args[@]}"}"
if [ "$pg" = 1 ]; then
  "$bench" --gateway target/release/tokenone \
    --postgres "${TOKENONE_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432}" \
    --redis "${TOKENONE_BENCH_REDIS_URL:-redis://127.0.0.1:6379}" \
    --pin-services "${TOKENONE_BENCH_PIN_SERVICES-postgres,redis-server}" \
    "${args[@]+"${args[@]}"}"
fi
