#!/usr/bin/env bash
# Builds the .NET client library, its tests and examples with Mono's mcs, and runs the tests with
# nunit-console. Run from anywhere; the project's test command runs `bash clients/dotnet/test.sh`
# from the repository root.
#
# Environment:
#   MM_GATEWAY_BIN  path of an mm-gateway binary (default: build it with cargo into target/)
#   MM_BIN          path of the Rust mm tool, for the interop tests (default: build it likewise)
#   MM_TESTDATA     the shared test-data folder (default: <repo>/testdata)
#   NUNIT_ARGS      extra arguments for nunit-console (e.g. -run=MessagingMesh.Tests.VectorTests)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="$here/build"

install_tools() {
    local missing=0
    for tool in mcs mono nunit-console; do
        command -v "$tool" >/dev/null 2>&1 || missing=1
    done
    if [ "$missing" = 1 ]; then
        echo "installing mono-mcs, mono-devel, nunit-console" >&2
        if [ "$(id -u)" != 0 ]; then
            echo "error: mcs/mono/nunit-console missing and not running as root to install them" >&2
            exit 1
        fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mono-mcs mono-devel nunit-console >/dev/null
    fi
}

install_tools

nunit_framework=/usr/lib/cli/nunit.framework-2.6.3/nunit.framework.dll
[ -f "$nunit_framework" ] || nunit_framework="$(find /usr/lib/cli /usr/lib/mono -name nunit.framework.dll 2>/dev/null | head -1)"

mkdir -p "$build"
mcs_flags=(-langversion:7.2 -warn:4 -warnaserror+ -debug -nologo)

echo "building library" >&2
mcs "${mcs_flags[@]}" -target:library -doc:"$build/MessagingMesh.xml" -out:"$build/MessagingMesh.dll" \
    "$here"/src/MessagingMesh/*.cs

echo "building tests" >&2
mcs "${mcs_flags[@]}" -target:library -out:"$build/MessagingMesh.Tests.dll" \
    -r:"$build/MessagingMesh.dll" -r:"$nunit_framework" -r:Mono.Posix \
    "$here"/tests/*.cs

echo "building examples and benchmark" >&2
for example in "$here"/examples/*.cs; do
    [ -f "$example" ] || continue
    name="$(basename "$example" .cs)"
    mcs "${mcs_flags[@]}" -target:exe -out:"$build/$name.exe" -r:"$build/MessagingMesh.dll" "$example" \
        "$here"/examples/shared/*.cs
done
for bench in "$here"/bench/*.cs; do
    [ -f "$bench" ] || continue
    mcs "${mcs_flags[@]}" -target:exe -out:"$build/$(basename "$bench" .cs).exe" -r:"$build/MessagingMesh.dll" "$bench"
done

export MM_TESTDATA="${MM_TESTDATA:-$repo/testdata}"

# The end-to-end tests run the real gateway; the interop tests also run the Rust mm tool.
bins=()
[ -n "${MM_GATEWAY_BIN:-}" ] || bins+=(mm-gateway)
[ -n "${MM_BIN:-}" ] || bins+=(mm)
if [ "${#bins[@]}" -gt 0 ]; then
    echo "building ${bins[*]}" >&2
    (cd "$repo" && cargo build --quiet "${bins[@]/#/--bin=}")
fi
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
export MM_GATEWAY_BIN="${MM_GATEWAY_BIN:-$target_dir/debug/mm-gateway}"
export MM_BIN="${MM_BIN:-$target_dir/debug/mm}"

echo "running tests" >&2
cd "$build"
# shellcheck disable=SC2086
nunit-console -nologo -xml="$build/TestResult.xml" ${NUNIT_ARGS:-} "$build/MessagingMesh.Tests.dll"
