#!/usr/bin/env bash
# Reliability under abuse, at full scale: every scenario of crates/mm-gateway-bin/tests/abuse/ at
# the sizes of the hardening issue (MM_ABUSE_SCALE=full), against the release build, one at a
# time, each under a time limit and a memory cap (the gateway is killed past 8 GiB resident).
#
#   bash bench/reliability.sh before|after [NAME_FILTER]
#
# Writes bench/results/reliability-<column>.jsonl (one line per scenario) and
# reliability-<column>.txt (what was measured, where, when), then renders docs/reliability.md
# from both columns. A NAME_FILTER (e.g. row_05) re-runs only matching scenarios; their new lines
# replace the old ones. Scenario output goes to target/reliability/<column>-<scenario>.log.
#
# Environment: MM_ABUSE_SCENARIO_TIMEOUT (seconds per scenario, default 900),
# MM_ABUSE_RSS_CAP_MIB (memory cap, default 8192).
set -euo pipefail
cd "$(dirname "$0")/.."

column="${1:-}"
filter="${2:-}"
case "$column" in
  before | after) ;;
  *)
    echo "usage: bash bench/reliability.sh before|after [NAME_FILTER]" >&2
    exit 2
    ;;
esac
limit="${MM_ABUSE_SCENARIO_TIMEOUT:-900}"
results=bench/results
logs=target/reliability
mkdir -p "$results" "$logs"
report="$PWD/$results/reliability-$column.jsonl"

echo "building the release binaries and the scenarios"
cargo build --release --locked -p mm-gateway-bin -p mm-testkit --bins
tests="$(cargo test --release --locked -p mm-gateway-bin --test abuse --no-run --message-format=json 2>/dev/null |
  grep -o '"executable":"[^"]*/deps/abuse-[^"]*"' | tail -n 1 | cut -d'"' -f4)"
[ -x "$tests" ] || { echo "cannot find the abuse test binary" >&2; exit 1; }

if [ -z "$filter" ]; then
  : >"$report"
fi
{
  gateway_commit="$(git log -1 --format=%h -- crates/mm-gateway/src crates/mm-wire/src)"
  echo "release build of commit $(git rev-parse --short HEAD), gateway source as of $gateway_commit"
  echo "($(git log -1 --format=%s "$gateway_commit" | cut -c1-80)),"
  echo "measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo),"
  echo "Linux $(uname -r); scenarios run one at a time, each under a ${limit} s limit."
} >"$results/reliability-$column.txt"

failed=0
for name in $("$tests" --list 2>/dev/null | sed -n 's/^\(row_[^:]*\): test$/\1/p'); do
  case "$name" in *"$filter"*) ;; *) continue ;; esac
  echo "==> $name"
  started=$(date +%s)
  status=0
  MM_ABUSE_SCALE=full MM_ABUSE_REPORT="$report" MM_GATEWAY_BIN="$PWD/target/release/mm-gateway" \
    timeout --kill-after=10 "$limit" "$tests" --exact "$name" --nocapture --test-threads 1 \
    >"$logs/$column-$name.log" 2>&1 || status=$?
  elapsed=$(($(date +%s) - started))
  grep -E '^(ok: |FAIL:|note:)' "$logs/$column-$name.log" | sed 's/^/    /' || true
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    # The scenario did not finish: record that, so the page says so.
    row=$(echo "$name" | sed -n 's/^row_0*\([0-9]*\)_.*/\1/p')
    printf '{"row":%s,"name":"%s","scale":"full","abuse":"%s","settings":"","gateway":"the scenario did not finish within %s s","baseline_rss_mib":0,"peak_rss_mib":0,"rss_after_mib":null,"longest_stall_ms":null,"healthy_lost":null,"healthy_sent":null,"notes":[],"failed_checks":["the scenario did not finish within %s s"],"passed_checks":[],"duration_s":%s}\n' \
      "${row:-0}" "$name" "$name" "$limit" "$limit" "$elapsed" >>"$report"
    echo "    timed out after ${limit} s"
  fi
  [ "$status" -eq 0 ] || failed=$((failed + 1))
done

target/release/reliability-report "$results" docs/reliability.md
echo "docs/reliability.md written; $failed scenario(s) with failed checks (column: $column)"
