#!/usr/bin/env bash
# Instructions per proxied call, counted by valgrind's callgrind: whatever else the machine does,
# a run's total repeats within ~2 % and the per-call figure (a difference of two totals) within
# ~5 %, where wall-clock figures on a shared machine vary far more.
#
#   bench/callgrind.sh [GATEWAY_BINARY]      (default: target/release/tokenone, built first)
#
# Runs the benchmark twice with the gateway under callgrind, at 250 req/s (+ 50 streaming req/s),
# for 4 s and for 8 s of measurement. Set-up (migrations, the Argon2id login, the REST calls) is
# the same in both, so the difference of the two totals divided by the difference of the calls
# is what one call costs: key auth, rate limit, classifier, wallet, upstream call, settlement,
# ledger, call log and event, on every thread of the process. The profiles stay in $OUT for
# `callgrind_annotate --inclusive=yes`. Needs valgrind (Debian package `valgrind`).
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
if [[ $# -ge 1 ]]; then
  gateway=$(realpath "$1")
  cargo build --release -p tokenone-bench
else
  cargo build --release -p tokenone -p tokenone-bench
  gateway=$(realpath target/release/tokenone)
fi
OUT=${OUT:-$(mktemp -d /tmp/tokenone-callgrind.XXXXXX)}
wrapper="$OUT/gateway.sh"
printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/run.%%p.out %s "$@"\n' "$OUT" "$gateway" > "$wrapper"
chmod +x "$wrapper"

rate=250 stream_rate=50 warmup=1
declare -a totals calls
for duration in 4 8; do
  before=("$OUT"/run.*.out)
  target/release/tokenone-bench --gateway "$wrapper" --duration "$duration" --warmup "$warmup" \
    --rate "$rate" --stream-rate "$stream_rate" --no-relay --no-saturation > "$OUT/bench-$duration.txt" 2>&1
  # The first profile of the run is the measured process (the second is the restart check).
  mapfile -t after < <(ls -tr "$OUT"/run.*.out)
  first=${after[${#before[@]}]}
  totals+=("$(awk '/^totals:/ {print $2}' "$first")")
  calls+=("$(( (duration + warmup) * (rate + stream_rate) ))")
  mv "$first" "$OUT/measured-$duration.out"
done
echo "profiles and bench output: $OUT"
echo "instructions, whole process: ${totals[0]} (4 s), ${totals[1]} (8 s)"
awk -v a="${totals[0]}" -v b="${totals[1]}" -v ca="${calls[0]}" -v cb="${calls[1]}" \
  'BEGIN { printf "instructions per call (5 non-streaming : 1 streaming): %.0f\n", (b - a) / (cb - ca) }'
