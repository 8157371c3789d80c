#!/usr/bin/env bash
# Installs everything the whole test suite needs (scripts/setup.sh --test), builds, and runs it.
# Ends with tap's summary and a plain "N passed, N failed" line; exits non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test

echo "==> npm test" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
npm test 2>&1 | tee "$log" || status=$?

# tap closes with "# { total: N, pass: N, fail: N, skip: N }"; restate it as a plain line.
summary=$(grep -E '^# \{ total: [0-9]+' "$log" | tail -1 || true)
if [[ -n $summary ]]; then
  num() { sed -nE "s/.*[{ ,]$1: ([0-9]+).*/\1/p" <<<"$summary" | head -1; }
  pass=$(num pass); fail=$(num fail); skip=$(num skip)
  line="${pass:-0} passed, ${fail:-0} failed"
  [[ -n $skip ]] && line+=", $skip skipped"
  echo "$line"
else
  echo "s3cryptfs test: no tap summary found" >&2
  [[ $status -eq 0 ]] && status=1
fi
exit "$status"
