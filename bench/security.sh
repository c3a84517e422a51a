#!/usr/bin/env bash
# Throughput with security configured against without, and over TLS (docs/benchmarks.md,
# "Security"). Release builds; configurations interleaved round by round so that a busy moment of
# a shared machine hits all of them; prints every run and the medians.
#
#   bash bench/security.sh [ROUNDS]        (default 5)
#   CASES="plain mm 65536 40000,secured mm 65536 40000" bash bench/security.sh 8
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rounds="${1:-5}"
cargo build --release --quiet --bin mm-gateway --bin mm --manifest-path "$repo/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$repo/target}/release"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
    -keyout "$work/gw.key" -out "$work/gw.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$work/gw.ext"
openssl x509 -req -days 2 -in "$work/gw.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -extfile "$work/gw.ext" -out "$work/gw.pem" 2>/dev/null
hash="$(printf 'bench-password\n' | "$bin/mm-gateway" passwd)"
users='"ServiceSecurity": {"BENCH": {
    "Users": [{"Name": "bench", "PasswordHash": "'"$hash"'",
               "Publish": {"Allow": ["bench.>"]}, "Subscribe": {"Allow": ["bench.>"]}}],
    "Anonymous": {"Publish": {"Allow": ["bench.>"]}, "Subscribe": {"Allow": ["bench.>"]}}}}'
echo '{}' > "$work/plain.json"
echo "{$users}" > "$work/secured.json"
echo "{\"Tls\": {\"CertFile\": \"$work/gw.pem\", \"KeyFile\": \"$work/gw.key\"}, $users}" > "$work/tls.json"

# run CONFIG SYSTEM SIZE COUNT → messages per second
run() {
    local config="$1" system="$2" size="$3" count="$4"
    # Fresh files: the shell opens them in the child, after this function goes on.
    local out err
    out="$(mktemp -p "$work")"
    err="$(mktemp -p "$work")"
    "$bin/mm-gateway" --port 0 --bind 127.0.0.1 --log-level warn --config "$work/$config.json" \
        > "$out" 2> "$err" &
    local gateway=$!
    local address=""
    for _ in $(seq 100); do
        address="$(awk '/listening on/ {print $4}' "$out")"
        [ -n "$address" ] && break
        sleep 0.05
    done
    local env=()
    if [ "$config" != plain ] && [ "$system" = mm ]; then
        env+=(MM_USER=bench MM_PASSWORD=bench-password)
    fi
    [ "$config" = tls ] && env+=(MM_TLS_CA="$work/ca.pem")
    local output
    if ! output="$(env "${env[@]}" "$bin/mm" bench pubsub --gateway "$address" --service BENCH \
        --system "$system" --size "$size" --count "$count" --json --no-progress)"; then
        echo "run failed ($config $system $size); gateway log:" >&2
        cat "$out" "$err" >&2
    fi
    sed -E 's/.*"messages_per_second":([0-9.]+).*/\1/' <<< "${output:-0}"
    kill "$gateway"
    wait "$gateway" 2>/dev/null || true
}

cases=(
    "plain mm 16 5000000" "secured mm 16 5000000" "tls mm 16 5000000"
    "plain mm-raw 16 5000000" "secured mm-raw 16 5000000"
    "plain mm 65536 40000" "secured mm 65536 40000" "tls mm 65536 40000"
)
if [ -n "${CASES:-}" ]; then
    IFS=',' read -r -a cases <<< "$CASES"
fi
log="$work/runs"
for round in $(seq "$rounds"); do
    # Every other round in reverse order: no configuration always runs first or last.
    order=("${cases[@]}")
    if [ $((round % 2)) = 0 ]; then
        order=()
        for ((i = ${#cases[@]} - 1; i >= 0; i--)); do order+=("${cases[$i]}"); done
    fi
    for case in "${order[@]}"; do
        # shellcheck disable=SC2086
        rate="$(run $case)"
        printf 'round %s  %-28s %12.0f msg/s\n' "$round" "$case" "$rate"
        set -- $case
        echo "$round $1 $2 $3 $rate" >> "$log"
    done
done
echo
echo "medians of $rounds rounds (ratio: against plain in the same round, same client and size):"
for case in "${cases[@]}"; do
    set -- $case
    awk -v config="$1" -v client="$2" -v size="$3" '
        function sort(a, n,    i, j, t) {
            for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        }
        $3 == client && $4 == size && $2 == "plain" { plain[$1] = $5 }
        $3 == client && $4 == size && $2 == config { rate[$1] = $5 }
        END {
            n = 0
            for (r in rate) { n++; rates[n] = rate[r]; ratios[n] = (r in plain) ? rate[r] / plain[r] : 0 }
            sort(rates, n); sort(ratios, n)
            m = int((n + 1) / 2)
            printf "%-8s %-7s %6s B  %12.0f msg/s   ratio %.3f  (ratios %.3f .. %.3f)\n", config, client, size, rates[m], ratios[m], ratios[1], ratios[n]
        }' "$log"
done
