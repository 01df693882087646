#!/usr/bin/env bash
# The long fault campaign (docs/consistent-cut.md, "Faults"): runs the test
# Faults.EveryCompleteIncrementRestoresTheHistoryAndEveryFailedOneIsRefused
# over SEEDS generated clusters from FIRST (default: 3000 from 1000, past
# the 200 the test suite runs), each with node crashes (during full
# snapshots too), crashes of the whole cluster on two seeds in three, lost
# and duplicated messages: every copy of the cluster must hold what the
# history committed, every complete increment must restore to what the
# history says and pass the cut checker, every failed one must be refused.
#   bash scripts/fault-campaign.sh [BUILD_DIR] [SEEDS] [FIRST]
# BUILD_DIR (default build/) must hold a build with -DWALCUT_BUILD_TESTS=ON.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
seeds=${2:-3000}
first=${3:-1000}
test_bin="$build/tests/engine_fault_test"
[[ -x "$test_bin" ]] || { echo "fault-campaign: $test_bin is missing: build with -DWALCUT_BUILD_TESTS=ON" >&2; exit 2; }
# Every cluster is written and fsynced many times: a RAM file system makes that free.
if [[ -z "${TMPDIR:-}" && -d /dev/shm ]]; then export TMPDIR=/dev/shm; fi
start=$(date +%s)
WALCUT_FAULT_SEEDS=$seeds WALCUT_FAULT_FIRST_SEED=$first "$test_bin" \
  --gtest_filter=Faults.EveryCompleteIncrementRestoresTheHistoryAndEveryFailedOneIsRefused
echo "fault-campaign: seeds $first..$((first + seeds - 1)) passed in $(( $(date +%s) - start )) s"
