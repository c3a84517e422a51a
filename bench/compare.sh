#!/usr/bin/env bash
# Side-by-side comparison of Messaging Mesh and NATS on this machine.
#
# Installs nats-server if it is missing (Debian package), builds the release binaries, then runs
# `mm bench compare`: both brokers on loopback, every workload through each with the same method,
# a table of Messaging Mesh / NATS ratios, raw results as JSON, and an SVG chart, written to
# bench/results/. Extra arguments go to `mm bench compare` (try --quick, --repeat 5, --help).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

nats="$(command -v nats-server || true)"
[ -z "$nats" ] && [ -x /usr/sbin/nats-server ] && nats=/usr/sbin/nats-server
if [ -z "$nats" ]; then
  echo "installing nats-server"
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q nats-server
  nats="$(command -v nats-server || echo /usr/sbin/nats-server)"
fi

cargo build --release --bins --locked
exec target/release/mm bench compare \
  --gateway-bin target/release/mm-gateway \
  --nats-bin "$nats" \
  --out bench/results \
  "$@"
