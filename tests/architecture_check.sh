#!/usr/bin/env bash
# docs/architecture.md's "Targets" table against the links CMake configured (library_links.txt,
# written by the top-level CMakeLists.txt): the same libraries, each with the same dsir links.
# usage: architecture_check.sh ARCHITECTURE_MD LIBRARY_LINKS_TXT
set -euo pipefail
doc=$1 links=$2
# Rows of the table after "## Targets": | `target` | folder | `a` `b` | -> "target: a b".
documented=$(awk '
  /^## / { in_table = ($0 == "## Targets") }
  in_table && /^\| `dsir_/ {
    n = split($0, cell, "|")
    target = cell[2]; deps = cell[4]
    gsub(/[` ]/, "", target)
    gsub(/`/, "", deps); gsub(/—/, "", deps); gsub(/^ +| +$/, "", deps); gsub(/ +/, " ", deps)
    print target ":" (deps == "" ? "" : " " deps)
  }' "$doc" | sort)
built=$(sed 's/ *$//' "$links" | grep . | sort)
if [[ $documented != "$built" ]]; then
  echo "docs/architecture.md's Targets table differs from CMake's links (< documented, > built):"
  diff <(echo "$documented") <(echo "$built") || true
  exit 1
fi
echo "architecture table: $(echo "$built" | wc -l) libraries agree with CMake"
