#!/bin/sh
# ABI gate: the dynamic symbols defined by the shared library must equal the
# checked-in list. Adding a public function updates symbols.txt in the same
# commit; removing one is an ABI break (soname bump).
set -eu
lib=$1 list=$2
actual=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | grep -v '^$' | grep -v '^SECCHAT_0$' | sort -u)
bad=$(printf '%s\n' "$actual" | grep -v '^secchat_' || true)
if [ -n "$bad" ]; then
  echo "non-secchat_ symbols exported:"; printf '%s\n' "$bad"; exit 1
fi
if ! diff -u "$list" - <<EOT
$actual
EOT
then
  echo "exported symbols differ from $list (see diff above)"; exit 1
fi
echo "abi: $(printf '%s\n' "$actual" | wc -l) symbols, all secchat_*, list matches"
