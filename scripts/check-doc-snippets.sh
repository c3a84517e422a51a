#!/usr/bin/env bash
# Compiles every C#, C++ and C code block of the repository's markdown files (```csharp, ```cpp
# and ```c fences), so that no README or doc shows code that does not build. Rust blocks are doc
# tests (`cargo test --doc`): this script checks that each one is in a file the doc tests include,
# that those files have no unlabelled fence (rustdoc would compile it as Rust), and that every
# fence's language is one it knows — a snippet is never skipped silently.
#
# Usage: scripts/check-doc-snippets.sh [MessagingMesh.dll]   (default: clients/dotnet/build/...)
# Needs mcs (Mono), g++ and gcc; scripts/test.sh runs it after building the C# client.
set -euo pipefail
cd "$(dirname "$0")/.."
dll="${1:-clients/dotnet/build/MessagingMesh.dll}"
[ -f "$dll" ] || { echo "check-doc-snippets: $dll not found (build the C# client first)" >&2; exit 1; }

# The markdown files whose Rust blocks `cargo test --doc` compiles (`#[doc = include_str!]` under
# cfg(doctest) in crates/mm-client, mm-wire, mm-gateway and mm-bench).
doctested=" README.md docs/security.md crates/mm-client/README.md crates/mm-wire/README.md crates/mm-gateway/README.md crates/mm-bench/README.md "

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# The C header under the include prefix programs use (<messagingmesh/messaging_mesh.h>).
mkdir -p "$scratch/include/messagingmesh" "$scratch/blocks"
cp crates/mm-capi/include/messaging_mesh.h "$scratch/include/messagingmesh/"

failed=0
while IFS= read -r file; do
  # One file per block: blocks/<n>.<language>, and a line "<n> <language> <file>:<line>" in the index.
  awk -v dir="$scratch/blocks" -v file="$file" -v start="$(find "$scratch/blocks" -type f | wc -l)" '
    BEGIN { n = start; inside = 0 }
    /^```/ {
      if (inside) { if ($0 ~ /^```[ \t]*$/) { inside = 0; if (out != "") close(out); out = "" }; next }
      inside = 1
      language = substr($0, 4); sub(/[ \t,].*/, "", language)
      n++
      out = dir "/" n "." (language == "" ? "plain" : language)
      printf "%d %s %s:%d\n", n, (language == "" ? "plain" : language), file, NR >> (dir "/index")
      printf "" > out
      next
    }
    inside && out != "" { print > out }
  ' "$file"
done < <(git ls-files '*.md')

counts_cs=0; counts_cpp=0; counts_c=0; counts_rust=0
while read -r n language where; do
  block="$scratch/blocks/$n.$language"
  source_file="${where%:*}"
  case "$language" in
    csharp)
      cp "$block" "$scratch/snippet$n.cs"
      if ! mcs -langversion:7.2 -warn:4 -warnaserror+ -nologo -target:exe -r:"$dll" \
          -out:"$scratch/snippet$n.exe" "$scratch/snippet$n.cs" >"$scratch/out" 2>&1; then
        echo "C# snippet at $where does not compile:" >&2; cat "$scratch/out" >&2; failed=1
      fi
      counts_cs=$((counts_cs + 1)) ;;
    cpp)
      cp "$block" "$scratch/snippet$n.cpp"
      if ! g++ -std=c++17 -Wall -Wextra -Werror -Iclients/cpp/include -I"$scratch/include" \
          -c "$scratch/snippet$n.cpp" -o "$scratch/snippet$n.o" 2>"$scratch/out"; then
        echo "C++ snippet at $where does not compile:" >&2; cat "$scratch/out" >&2; failed=1
      fi
      counts_cpp=$((counts_cpp + 1)) ;;
    c)
      cp "$block" "$scratch/snippet$n.c"
      if ! gcc -std=c99 -Wall -Wextra -Wpedantic -Werror -I"$scratch/include" \
          -c "$scratch/snippet$n.c" -o "$scratch/snippet$n.o" 2>"$scratch/out"; then
        echo "C snippet at $where does not compile:" >&2; cat "$scratch/out" >&2; failed=1
      fi
      counts_c=$((counts_c + 1)) ;;
    rust)
      if [[ "$doctested" != *" $source_file "* ]]; then
        echo "Rust snippet at $where is in a file the doc tests do not include" >&2; failed=1
      fi
      counts_rust=$((counts_rust + 1)) ;;
    plain)
      if [[ "$doctested" == *" $source_file "* ]]; then
        echo "unlabelled fence at $where: rustdoc would compile it as Rust (label it, e.g. \`\`\`text)" >&2
        failed=1
      fi ;;
    sh | text | json | cmake | yaml) ;;
    *)
      echo "fence at $where has a language this check does not know: $language" >&2; failed=1 ;;
  esac
done < "$scratch/blocks/index"

echo "doc snippets: compiled $counts_cs C#, $counts_cpp C++, $counts_c C; $counts_rust Rust left to the doc tests"
exit "$failed"
