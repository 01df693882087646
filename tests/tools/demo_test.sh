#!/usr/bin/env bash
# The README's first command tells the whole story: runs scripts/demo.sh with
# the walcut built here and checks that it shows the snapshot's info and
# check and ends with a good one-line verdict.
set -euo pipefail
walcut=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(WALCUT="$walcut" bash "$root/scripts/demo.sh" 2>&1) || { echo "$out"; echo "demo exited non-zero"; exit 1; }
fail() { echo "$out"; echo "demo_test: $1"; exit 1; }
grep -q '^== walcut snapshot info' <<<"$out" || fail "no snapshot info section"
grep -q '^4 nodes: node0, node1, node2, node3$' <<<"$out" || fail "snapshot info does not list the nodes"
grep -q '^== walcut snapshot check' <<<"$out" || fail "no snapshot check section"
grep -q '^clean (' <<<"$out" || fail "snapshot check is not clean"
grep -q '\.smf' <<<"$out" && fail "the demo still lists .smf files"
last=$(tail -n 1 <<<"$out")
[[ $last == "verdict: OK: "* ]] || fail "the last line is not a good verdict: $last"
echo "demo_test: $last"
