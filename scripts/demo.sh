#!/usr/bin/env bash
# The demo: installs what is missing, builds the walcut CLI, writes a few WAL
# segments from several threads, then reads them back with `wal stats` and
# `wal dump`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/install-deps.sh"
bash "$root/scripts/build.sh" "$root/build" -DCMAKE_BUILD_TYPE=Release -DWALCUT_BUILD_TESTS=OFF -DWALCUT_BUILD_BENCH=OFF -- walcut_cli
walcut="$root/build/walcut"
demo=$(mktemp -d "${TMPDIR:-/tmp}/walcut-demo-XXXXXX")
trap 'rm -rf "$demo"' EXIT

echo "== walcut wal synth: 20000 transactions from 4 threads, LZ4 blocks, 1 MiB segments"
"$walcut" wal synth "$demo/wal" --transactions 20000 --threads 4 --codec lz4 --segment-kib 1024 --sync interval
ls -l "$demo/wal"
echo
echo "== walcut wal stats"
"$walcut" wal stats "$demo/wal"
echo
echo "== walcut wal dump (first records, then the COMMITTED ones as JSON)"
"$walcut" wal dump "$demo/wal" > "$demo/dump.txt"
"$walcut" wal dump "$demo/wal" --type TX --json > "$demo/dump.json"
head -n 6 "$demo/dump.txt" | cut -c1-160
grep -m 2 COMMITTED "$demo/dump.json"
echo
echo "== a torn tail: damage the last block of the last segment"
last=$(ls "$demo/wal"/*.wal | tail -n 1)
end=$("$walcut" wal stats "$last" --json | sed -n 's/.*"offset": \([0-9]*\).*/\1/p')
printf '\xff' | dd of="$last" bs=1 seek=$((end - 3)) conv=notrunc status=none
"$walcut" wal stats "$demo/wal" | tail -n 1
echo
echo "demo done"
