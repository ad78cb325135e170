#!/bin/bash
# The architecture as the README draws it ("How the code is laid out"): each folder of
# src/ includes headers only of itself and of the folders above it in that table, whose
# order this reads, and every folder of src/ is in the table.
#   tests/tools/layers_test.sh REPOSITORY_ROOT
set -euo pipefail
root=$1
mapfile -t order < <(sed -n '/^## How the code is laid out/,/^## Data/p' "$root/README.md" |
  sed -n 's/^| `src\/\([a-z_]*\)` |.*/\1/p')
if [ "${#order[@]}" -lt 2 ]; then
  echo "FAIL: README.md has no table of src/ folders under 'How the code is laid out'"
  exit 1
fi
declare -A rank
for i in "${!order[@]}"; do rank[${order[$i]}]=$i; done
failed=0
for dir in "$root"/src/*/; do
  folder=$(basename "$dir")
  if [ -z "${rank[$folder]+set}" ]; then
    echo "FAIL: src/$folder is not in README.md's table of folders"
    failed=1
  fi
done
for folder in "${order[@]}"; do
  [ -d "$root/src/$folder" ] || { echo "FAIL: README.md's table names src/$folder, which does not exist"; failed=1; continue; }
  while IFS= read -r hit; do
    file=${hit%%:*}
    included=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([a-z_]*\)\/.*/\1/p' <<< "${hit#*:}")
    [ -n "$included" ] && [ -n "${rank[$included]+set}" ] || continue  # not one of src/'s folders
    if (( rank[$included] > rank[$folder] )); then
      echo "FAIL: ${file#"$root"/} includes $included/, which README.md's table puts below src/$folder"
      failed=1
    fi
  done < <(grep -rH '#[[:space:]]*include[[:space:]]*"' "$root/src/$folder" || true)
done
[ "$failed" = 0 ] && echo "ok: ${#order[@]} folders, each including only itself and those above it: ${order[*]}"
exit "$failed"
