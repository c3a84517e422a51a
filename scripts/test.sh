#!/usr/bin/env bash
# The whole Messaging Mesh test suite, as CI runs it (`.ci/run` calls exactly this).
#
# Works on a fresh Debian machine that has only the Rust toolchain: it installs what else it
# needs (Debian packages through apt-get, cargo-fuzz through cargo). Steps:
#   1. system packages (protoc and Google's .proto files, which the etcd client's build needs;
#      etcd for the discovery tests; iproute2 for the network-namespace test; Mono/NUnit for the
#      C# client; chromium and Node.js for the dashboard's browser test)
#   2. formatting and lints (cargo fmt --check, clippy -D warnings)
#   3. build the binaries the end-to-end tests start (mm-gateway, mm)
#   4. every Rust test (unit, property, end to end), and doc tests (which include the READMEs)
#   5. the monitoring dashboard in headless Chromium (playwright-core from npm, pinned in
#      tests/browser/package-lock.json; it drives Debian's chromium, it downloads no browser)
#   6. fuzz targets: replay the checked-in corpus and fuzz each target for a short while
#   7. the C# client: build with mcs, run its NUnit suite (including end-to-end tests); then every
#      C#, C++ and C snippet of the markdown files is compiled (scripts/check-doc-snippets.sh)
#   8. the C++ client: CMake build (which drives cargo for the C ABI), its GoogleTest suite under
#      ctest, the same suite under AddressSanitizer + UndefinedBehaviorSanitizer, a short valgrind
#      session, and the package used through find_package (after cmake --install) and
#      add_subdirectory
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
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
dpkg -s libgtest-dev >/dev/null 2>&1 || missing+=(libgtest-dev)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
# The client library lists its own tokio features; it must not pull `signal` into applications.
if cargo tree -p messaging-mesh -e normal,features -i tokio --locked --prefix none | grep -q 'tokio feature "signal"'; then
  echo "messaging-mesh pulls tokio's signal feature" >&2
  exit 1
fi

step "build binaries and examples for the end-to-end tests"
cargo build --workspace --bins --examples --all-features --locked

step "Rust tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --locked --profile ci
else
  cargo test --workspace --all-features --locked
fi
cargo test --workspace --doc --locked

step "monitoring dashboard in a browser"
[ -d tests/browser/node_modules/playwright-core ] ||
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
MM_GATEWAY_BIN="$PWD/target/debug/mm-gateway" MM_BIN="$PWD/target/debug/mm" \
  node tests/browser/dashboard.test.mjs

step "fuzz targets (corpus replay + ${FUZZ_SECONDS}s each)"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for target in frame_decoder body_decoder; do
  echo "fuzz target $target:"
  scratch="$(mktemp -d)"
  # The last lines of libFuzzer's report (final stats), each prefixed with the target's name.
  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$scratch" "corpus/$target" -- \
      -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 2>&1 | tail -n 3 | sed "s/^/  $target: /")
  rm -rf "$scratch"
done

step "C# client"
MM_GATEWAY_BIN="$PWD/target/debug/mm-gateway" MM_BIN="$PWD/target/debug/mm" bash clients/dotnet/test.sh

step "documentation snippets: C#, C++ and C blocks compiled (Rust blocks are doc tests, above)"
bash scripts/check-doc-snippets.sh clients/dotnet/build/MessagingMesh.dll

step "C++ client"
# One build per configuration, kept in target/cpp so that reruns are incremental; both link the
# static library cargo builds here (the CMake builds run cargo too, which then has nothing to do).
cargo build --locked -p mm-capi --lib
cpp="$PWD/target/cpp"
cmake -S clients/cpp -B "$cpp/plain" -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$cpp/plain" -j2
ctest --test-dir "$cpp/plain" -j2 --output-on-failure
# The sanitized run reuses the plain build's examples (ExampleTests start them as processes).
cmake -S clients/cpp -B "$cpp/sanitized" -DCMAKE_BUILD_TYPE=Debug -DMESSAGINGMESH_SANITIZE=address,undefined \
  -DMESSAGINGMESH_BUILD_EXAMPLES=OFF -DMESSAGINGMESH_BUILD_BENCH=OFF >/dev/null
cmake --build "$cpp/sanitized" -j2
MM_EXAMPLES_DIR="$cpp/plain/examples" ctest --test-dir "$cpp/sanitized" -j2 --output-on-failure
valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
  "$cpp/plain/tests/messagingmesh_tests" \
  --gtest_filter='Message.*:BLOB.*:Vectors.*:EndToEnd.RequestReplyInEveryForm:EndToEnd.QueueMode*:EndToEnd.Unsubscribing*'
# Packaging: the installed tree through find_package, and the source tree through add_subdirectory.
scratch="$(mktemp -d)"
cmake --install "$cpp/plain" --prefix "$scratch/prefix" >/dev/null
cmake -S clients/cpp/tests/consumer -B "$scratch/installed" -DCMAKE_PREFIX_PATH="$scratch/prefix" >/dev/null
cmake --build "$scratch/installed" -j2 >/dev/null
"$scratch/installed/consumer_cpp" && "$scratch/installed/consumer_c"
cmake -S clients/cpp/tests/consumer -B "$scratch/subdir" -DMESSAGINGMESH_SOURCE_DIR="$PWD/clients/cpp" >/dev/null
cmake --build "$scratch/subdir" -j2 >/dev/null
"$scratch/subdir/consumer_cpp" && "$scratch/subdir/consumer_c"
rm -rf "$scratch"

step "all tests passed"
