#!/usr/bin/env bash
# Formats dsir's C++ with .clang-format (clang-format-14, Debian 12's; another version may format
# differently), or with --check lists the files that differ and fails: .ci/run runs the check.
# usage: scripts/format.sh [--check]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format-14 >/dev/null ||
  { echo "format.sh: clang-format-14 not found (bash scripts/install-deps.sh installs it)" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.cpp' '*.h' | grep -v '^tests/fuzz/\(corpus\|regressions\)/')
if [[ ${1:-} == --check ]]; then
  bad=()
  for f in "${files[@]}"; do clang-format-14 --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f"); done
  if ((${#bad[@]})); then
    printf 'format.sh: not formatted (run bash scripts/format.sh): %s\n' "${bad[@]}" >&2
    exit 1
  fi
  echo "format.sh: ${#files[@]} files formatted"
else
  clang-format-14 -i "${files[@]}"
fi
