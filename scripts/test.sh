#!/usr/bin/env bash
# The whole Messaging Mesh test suite, as CI runs it (`.ci/run` calls exactly this).
#
# Works on a fresh Debian machine that has only the Rust toolchain: it installs what else it
# needs (Debian packages through apt-get, cargo-fuzz through cargo). Steps:
#   1. system packages (protoc and Google's .proto files, which the etcd client's build needs;
#      etcd for the discovery tests; iproute2 for the network-namespace test; Mono/NUnit for the
#      C# client)
#   2. formatting and lints (cargo fmt --check, clippy -D warnings)
#   3. build the binaries the end-to-end tests start (mm-gateway, mm)
#   4. every Rust test (unit, property, end to end), and doc tests
#   5. fuzz targets: replay the checked-in corpus and fuzz each target for a short while
#   6. the C# client: build with mcs, run its NUnit suite (including end-to-end tests)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
# The network-namespace test needs root and iproute2 (CI runs as root; step 1 installs iproute2).
# Without them it would print why and return; with this set, it fails instead of passing unrun.
export MM_REQUIRE_NETNS="${MM_REQUIRE_NETNS:-1}"

step() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

step "system packages"
missing=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
[ -f /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v mcs >/dev/null 2>&1 || missing+=(mono-mcs)
dpkg -s mono-devel >/dev/null 2>&1 || missing+=(mono-devel)
command -v nunit-console >/dev/null 2>&1 || missing+=(nunit-console)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "build binaries for the end-to-end tests"
cargo build --workspace --bins --locked

step "Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --locked --profile ci
else
  cargo test --workspace --all-features --locked
fi
cargo test --workspace --doc --locked

step "fuzz targets (corpus replay + ${FUZZ_SECONDS}s each)"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for target in frame_decoder body_decoder; do
  scratch="$(mktemp -d)"
  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$scratch" "corpus/$target" -- \
      -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 2>&1 | tail -n 3)
  rm -rf "$scratch"
done

step "C# client"
MM_GATEWAY_BIN="$PWD/target/debug/mm-gateway" MM_BIN="$PWD/target/debug/mm" bash clients/dotnet/test.sh

step "all tests passed"
