#!/usr/bin/env bash
# What monitoring costs the routing path: `mm bench pubsub --system mm-raw` (1 -> 1, 16-byte
# payloads) against a gateway with monitoring off (no --http) and on (--http 0, nobody reading:
# per-second rates, top subjects, link probes all running), in pairs run back to back so both
# see the same machine load, alternating which goes first. Prints each run — throughput, and the
# gateway's CPU time (all its threads, from /proc/PID/task/*/schedstat) per million messages — then the medians and the
# median of the per-pair ratios, which is what a shared, noisy machine measures best.
#
#   bash bench/monitoring.sh            # 31 pairs, 5 M messages per run
#   RUNS=31 COUNT=10000000 bash bench/monitoring.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-31}"
COUNT="${COUNT:-5000000}"
SIZE="${SIZE:-16}"

cargo build --release --bins --locked -q
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# One run: starts a gateway with the given extra arguments; prints "RATE CPU_SECONDS".
run_one() {
  target/release/mm-gateway --port 0 --bind 127.0.0.1 --log-level warn "$@" > "$scratch/out" 2>/dev/null &
  local gateway=$!
  local port=""
  for _ in $(seq 100); do
    port="$(sed -n 's/^mm-gateway listening on .*:\([0-9]*\)$/\1/p' "$scratch/out" | head -n 1)"
    [ -n "$port" ] && break
    sleep 0.05
  done
  local rate
  rate="$(target/release/mm bench pubsub --system mm-raw --gateway "127.0.0.1:$port" --size "$SIZE" \
      --count "$COUNT" --json --no-progress |
    sed -n 's/.*"messages_per_second":\([0-9.]*\).*/\1/p')"
  # CPU time of every thread of the gateway, in nanoseconds (first field of schedstat).
  local nanoseconds
  nanoseconds="$(cat /proc/"$gateway"/task/*/schedstat 2>/dev/null | awk '{ sum += $1 } END { print sum }')"
  kill "$gateway"
  wait "$gateway" 2>/dev/null || true
  echo "$rate $(awk -v ns="$nanoseconds" 'BEGIN { print ns / 1e9 }')"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

: > "$scratch/off"
: > "$scratch/on"
: > "$scratch/ratio"
: > "$scratch/cpu_off"
: > "$scratch/cpu_on"
for run in $(seq "$RUNS"); do
  if [ $((run % 2)) -eq 1 ]; then order="off on"; else order="on off"; fi
  for mode in $order; do
    if [ "$mode" = on ]; then result="$(run_one --http 0)"; else result="$(run_one)"; fi
    rate="${result% *}"
    cpu="${result#* }"
    echo "$rate" >> "$scratch/$mode"
    awk -v c="$cpu" -v n="$COUNT" 'BEGIN { print c / n * 1e6 }' >> "$scratch/cpu_$mode"
    printf 'run %2d  monitoring %-3s  %9.0f msg/s  gateway CPU %.4f s per M msg\n' "$run" "$mode" "$rate" \
      "$(tail -n 1 "$scratch/cpu_$mode")"
  done
  awk -v on="$(tail -n 1 "$scratch/on")" -v off="$(tail -n 1 "$scratch/off")" 'BEGIN { print on / off }' >> "$scratch/ratio"
done
off="$(median < "$scratch/off")"
on="$(median < "$scratch/on")"
ratio="$(median < "$scratch/ratio")"
cpu_off="$(median < "$scratch/cpu_off")"
cpu_on="$(median < "$scratch/cpu_on")"
awk -v off="$off" -v on="$on" -v ratio="$ratio" -v cpu_off="$cpu_off" -v cpu_on="$cpu_on" 'BEGIN {
  printf "median throughput: monitoring off %.2f M msg/s, on %.2f M msg/s (on/off %.3f)\n", off / 1e6, on / 1e6, on / off
  printf "median of per-pair ratios on/off: %.3f (%+.1f %%)\n", ratio, (ratio - 1) * 100
  printf "median gateway CPU per M messages: off %.3f s, on %.3f s (on/off %.3f)\n", cpu_off, cpu_on, cpu_on / cpu_off }'
