#!/usr/bin/env bash
# Runs every libFuzzer harness of a WALCUT_FUZZ build over a copy of its seed
# corpus (tests/fuzz/corpus/<name>/) for a bounded time. Fails when a harness
# crashes, hangs, leaks or allocates too much; the input that did it is kept
# in BUILD_DIR/fuzz-artifacts/ (docs/testing.md).
#   scripts/fuzz.sh BUILD_DIR [SECONDS_EACH]    (default 30)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
seconds=${2:-30}
work=$(mktemp -d "${TMPDIR:-/tmp}/walcut-fuzz-XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/fuzz-artifacts"

failed=()
for corpus in "$root"/tests/fuzz/corpus/*/; do
  name=$(basename "$corpus")
  harness="$build/tests/fuzz/fuzz_$name"
  if [ ! -x "$harness" ]; then
    echo "fuzz: no harness $harness for the corpus $corpus" >&2
    failed+=("$name")
    continue
  fi
  mkdir -p "$work/$name"
  cp "$corpus"* "$work/$name/"
  # -timeout: one input taking longer is a hang; -malloc_limit_mb: one allocation larger is a length field believed.
  if (cd "$work" && "$harness" -max_total_time="$seconds" -timeout=10 -malloc_limit_mb=512 -rss_limit_mb=2048 \
        -artifact_prefix="$build/fuzz-artifacts/$name-" "$work/$name" >"$work/$name.log" 2>&1); then
    echo "fuzz_$name: $(grep -o 'Done [0-9]* runs' "$work/$name.log" | tail -1 | cut -d' ' -f2) inputs in ${seconds}s, no failure"
  else
    echo "fuzz_$name: FAILED; the end of its log:" >&2
    tail -n 40 "$work/$name.log" >&2
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failed: ${failed[*]} (inputs in $build/fuzz-artifacts/)" >&2
  exit 1
fi
