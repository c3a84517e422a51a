#!/usr/bin/env bash
# C++ client against the Rust client library, side by side on one release gateway: 16-byte
# messages published from one connection (no subscriber), and 1 -> 1 pub/sub. Each workload runs
# ROUNDS times, alternating which client goes first; the medians and the C++/Rust ratio are
# printed. Usage: bash clients/cpp/bench/compare.sh [COUNT] [ROUNDS]   (defaults 5000000, 3)
set -euo pipefail
cd "$(dirname "$0")/../../.."
count="${1:-5000000}"
rounds="${2:-3}"

cargo build --release --locked --bin mm-gateway --bin mm >&2
cmake -S clients/cpp -B target/cpp/release -DCMAKE_BUILD_TYPE=Release -DMESSAGINGMESH_BUILD_TESTS=OFF \
  -DMESSAGINGMESH_BUILD_EXAMPLES=OFF -DMESSAGINGMESH_BUILD_BENCH=ON >/dev/null
cmake --build target/cpp/release -j2 >&2
cpp=target/cpp/release/bench/messagingmesh_bench

log="$(mktemp)"
target/release/mm-gateway --port 0 --bind 127.0.0.1 >"$log" 2>&1 &
gateway=$!
trap 'kill "$gateway" 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 300); do grep -q "listening on" "$log" && break; sleep 0.1; done
address="127.0.0.1:$(head -1 "$log" | sed 's/.*://')"

# One number (messages per second) per run.
rust() { target/release/mm bench "$1" --gateway "$address" --size 16 --count "$count" --json --no-progress |
  grep -o '"messages_per_second":[0-9.]*' | head -1 | cut -d: -f2; }
cplusplus() { "$cpp" "$1" --gateway "$address" --size 16 --count "$count" |
  grep -o '"messages_per_second":[0-9.]*' | cut -d: -f2; }
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

for workload in pub pubsub; do
  rust_runs=()
  cpp_runs=()
  for round in $(seq 1 "$rounds"); do
    if [ $((round % 2)) -eq 1 ]; then
      rust_runs+=("$(rust "$workload")"); cpp_runs+=("$(cplusplus "$workload")")
    else
      cpp_runs+=("$(cplusplus "$workload")"); rust_runs+=("$(rust "$workload")")
    fi
  done
  r="$(printf '%s\n' "${rust_runs[@]}" | median)"
  c="$(printf '%s\n' "${cpp_runs[@]}" | median)"
  printf '%-7s 16 B x %s: Rust %.0f msg/s (runs: %s)  C++ %.0f msg/s (runs: %s)  C++/Rust %.2f\n' "$workload" "$count" \
    "$r" "${rust_runs[*]}" "$c" "${cpp_runs[*]}" "$(awk -v c="$c" -v r="$r" 'BEGIN {print c / r}')"
done
