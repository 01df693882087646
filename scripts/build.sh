#!/usr/bin/env bash
# Configures and builds walcut into a build directory.
#   scripts/build.sh DIR [cmake options...] [-- ninja targets...]
set -euo pipefail
dir=$1; shift
cmake_args=(); targets=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; targets=("$@"); break; fi
  cmake_args+=("$1"); shift
done
cmake -S "$(dirname "$0")/.." -B "$dir" -G Ninja "${cmake_args[@]}" >/dev/null
cmake --build "$dir" -- "${targets[@]}"
