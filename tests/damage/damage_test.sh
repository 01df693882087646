#!/usr/bin/env bash
# The damage test (docs/testing.md): generates a small snapshot with two
# increments from a fixed seed, then damages one file type at a time (full
# .smf, increment .smf, partition files, WAL segments) in every way listed
# below, and runs `snapshot check` and `snapshot restore` on each copy.
#
# A case passes when each command either refuses (exit 1, 2 or 3) with a
# message naming the damaged file, or succeeds and the restore's
# `walcut dump` equals the undamaged restore's; `check` may say clean only
# when the restore came out identical. Everything else fails: a restore
# that succeeds with other contents (a silent wrong result), a refusal
# that does not name the file, a failed restore that leaves its --dest
# behind, an abort, a sanitizer report, a hang.
#
#   tests/damage/damage_test.sh WALCUT_BINARY
# Set WALCUT_DAMAGE_KEEP=1 to keep the work directory, WALCUT_DAMAGE_ONLY=TEXT
# to run only the cases whose name contains TEXT.
set -uo pipefail
walcut=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
[ -x "$walcut" ] || { echo "damage_test: $1 is not executable" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/walcut-damage-XXXXXX")
if [ "${WALCUT_DAMAGE_KEEP:-0}" = 1 ]; then echo "work directory: $work"; else trap 'rm -rf "$work"' EXIT; fi
# A sanitizer report ends the process with SIGABRT, so it counts as an abort.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}abort_on_error=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:abort_on_error=1:print_stacktrace=1"
readonly kTimeout=120  # seconds per command: longer is a hang

# ---- the snapshot and the undamaged result

"$walcut" gen --out "$work/gen" --seed 7 --nodes 3 --partitions 8 --keys 200 --value-bytes 32 --txs 400 \
  --increments 2 --segment-mib 1 >/dev/null || { echo "damage_test: walcut gen failed" >&2; exit 1; }
pristine="$work/gen/snapshots/snp"
timeout $kTimeout "$walcut" snapshot check "$pristine" --increment 2 >"$work/check.out" 2>&1 ||
  { cat "$work/check.out"; echo "damage_test: the undamaged snapshot does not check clean" >&2; exit 1; }
timeout $kTimeout "$walcut" snapshot restore "$pristine" --increment 2 --dest "$work/restored" >/dev/null &&
  timeout $kTimeout "$walcut" dump "$work/restored" >"$work/expected.dump" ||
  { echo "damage_test: the undamaged snapshot does not restore" >&2; exit 1; }
rm -rf "$work/restored"

# The files damaged, by type: the largest partition file of a TRANSACTIONAL
# and of an ATOMIC group, each increment's first segment of a node (the
# second holds increment 2's FINISH record), an increment's .smf of each
# increment, a full snapshot's .smf.
largest() { (cd "$pristine" && ls -S "$1" | head -n 1 | sed "s|^|$1/|"); }
inc1=increments/0000000000000001
inc2=increments/0000000000000002
part_tx=$(largest db/node0/tx0)
part_atomic=$(largest db/node2/atomic0)
seg1=$(cd "$pristine" && ls $inc1/wal/node0/*.wal | head -n 1)
seg2=$(cd "$pristine" && ls $inc2/wal/node1/*.wal | head -n 1)
smf_full=node1.smf
smf_inc1=$inc1/node1.smf
smf_inc2=$inc2/node2.smf

# ---- damage primitives (paths relative to the copy, the current directory)

size_of() { stat -c %s "$1"; }
# XORs the byte at offset $2 of $1 with 0x01 (one bit, as a disk would flip it).
flip() {
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $((b ^ 1)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# Offset one past the last non-zero byte: a segment's written part.
written_end() { od -An -v -tu1 -w1 "$1" | awk '$1 != 0 { last = NR } END { print last + 0 }'; }
swap() { mv "$1" "$work/swap.tmp" && mv "$2" "$1" && mv "$work/swap.tmp" "$2"; }

# Offsets of a file's header fields, by type (docs/*-format.md), and a few
# payload offsets drawn from a fixed seed.
header_offsets() {
  case "$1" in
    *.smf) echo "0 8 12 16 17 $(($(size_of "$1") - 4)) $(($(size_of "$1") - 1))" ;;
    *.bin) echo "0 8 12 16 18 20 24 28 32 36 40 $(($(size_of "$1") - 40)) $(($(size_of "$1") - 32)) $(($(size_of "$1") - 1))" ;;
    *.wal) echo "0 8 12 14 16 24 32 40 48 60 64 68 72 76 80 84 88 96 104 112" ;;
  esac
}
sample_offsets() {  # FROM TO COUNT
  local seed=7919 i
  for ((i = 0; i < $3; i++)); do
    seed=$(((seed * 1103515245 + 12345) % 2147483648))
    echo $(($1 + seed % ($2 - $1)))
  done
}

# ---- one case

rows=()
failures=0
# run_case NAME NAMES COMMAND...: copies the snapshot, runs COMMAND in the
# copy, then check and restore. NAMES: what a refusal must mention, as
# alternatives separated by '|', each a list of texts separated by '&' that
# must all appear (a deleted .smf can only be named by its directory and node).
run_case() {
  local name=$1 names=$2; shift 2
  if [ -n "${WALCUT_DAMAGE_ONLY:-}" ] && [[ $name != *"$WALCUT_DAMAGE_ONLY"* ]]; then return; fi
  local copy="$work/case/snp" dest="$work/case/restored"
  rm -rf "$work/case" && mkdir -p "$work/case" && cp -a "$pristine" "$copy"
  (cd "$copy" && "$@") || { echo "damage_test: could not damage: $name" >&2; exit 1; }
  timeout $kTimeout "$walcut" snapshot check "$copy" --increment 2 >"$work/case/check.out" 2>&1
  local check_rc=$?
  timeout $kTimeout "$walcut" snapshot restore "$copy" --increment 2 --dest "$dest" >"$work/case/restore.out" 2>&1
  local restore_rc=$?
  local restore check verdict=ok
  restore=$(judge $restore_rc "$work/case/restore.out" "$names")
  if [ "$restore" = success ]; then
    if timeout $kTimeout "$walcut" dump "$dest" >"$work/case/restored.dump" 2>&1 &&
       cmp -s "$work/case/restored.dump" "$work/expected.dump"; then
      restore=same
    else
      restore=WRONG
    fi
  elif [ -e "$dest" ]; then
    restore="$restore,LEFT-DEST"
  fi
  check=$(judge $check_rc "$work/case/check.out" "$names")
  [ "$check" = success ] && check=clean
  case "$restore" in named | same) ;; *) verdict=FAIL ;; esac
  case "$check" in named) ;; clean) [ "$restore" = same ] || verdict=FAIL ;; *) verdict=FAIL ;; esac
  rows+=("$(printf '%-4s %-58s check %-3s %-8s restore %-3s %s' "$verdict" "$name" "$check_rc" "$check" "$restore_rc" "$restore")")
  if [ "$verdict" = FAIL ]; then
    failures=$((failures + 1))
    { echo "-- $name: check said:"; tail -n 5 "$work/case/check.out"; echo "-- restore said:"; tail -n 5 "$work/case/restore.out"; } >>"$work/failures.txt"
  fi
}

# judge EXIT OUTPUT NAMES: success, named (refused, naming the file),
# UNNAMED (refused without naming it), ABORT (any other exit: a signal, a
# sanitizer, a timeout).
judge() {
  case $1 in
    0) echo success; return ;;
    1 | 2 | 3) ;;
    *) echo ABORT; return ;;
  esac
  local alt part all
  IFS='|' read -ra alts <<<"$3"
  for alt in "${alts[@]}"; do
    all=1
    IFS='&' read -ra parts <<<"$alt"
    for part in "${parts[@]}"; do grep -qF -- "$part" "$2" || all=0; done
    if [ $all = 1 ]; then echo named; return; fi
  done
  echo UNNAMED
}

# ---- the cases

damage_file() {  # FILE [NAMES]: every damage of one file
  local f=$1 names=${2:-$1} size from to o
  size=$(size_of "$pristine/$f")
  for o in $(header_offsets "$pristine/$f"); do run_case "$f: flip header byte $o" "$names" flip "$f" "$o"; done
  from=0 to=$size
  case "$f" in
    *.wal) from=112 to=$(written_end "$pristine/$f") ;;
    *.bin) from=40 to=$((size - 40)) ;;
    *.smf) from=16 to=$((size - 4)) ;;
  esac
  for o in $(sample_offsets "$from" "$to" 4); do run_case "$f: flip payload byte $o" "$names" flip "$f" "$o"; done
  if [[ $f == *.wal ]]; then
    run_case "$f: flip a byte after the written part" "$names" flip "$f" $((to + 1000))
    run_case "$f: truncate to the written part" "$names" truncate -s "$to" "$f"
  fi
  run_case "$f: truncate to half" "$names" truncate -s $((size / 2)) "$f"
  run_case "$f: truncate by one byte" "$names" truncate -s $((size - 1)) "$f"
  run_case "$f: truncate to zero" "$names" truncate -s 0 "$f"
  run_case "$f: extend by one byte" "$names" sh -c "printf x >>'$f'"
  run_case "$f: extend by 4096 zeros" "$names" sh -c "head -c 4096 /dev/zero >>'$f'"
  run_case "$f: delete" "$names" rm "$f"
}

damage_file "$smf_full" "$smf_full|node1&metadata"
damage_file "$smf_inc1" "$smf_inc1|$inc1&node1"
damage_file "$smf_inc2" "$smf_inc2|$inc2&node2"
damage_file "$part_tx"
damage_file "$part_atomic"
damage_file "$seg1"
damage_file "$seg2"

# A stray file: harmless where nothing reads it, named where it claims to be part of the snapshot.
run_case "stray: a text file beside the .smf files" "notes.txt" sh -c "echo hello >notes.txt"
run_case "stray: a partition file no node owns" "db/node0/tx0/part-999.bin" cp "$part_tx" db/node0/tx0/part-999.bin
run_case "stray: a segment after the increment's last" "$inc1/wal/node0/0000000000000099.wal" \
  cp "$seg1" $inc1/wal/node0/0000000000000099.wal
run_case "stray: a full .smf of a node not in the baseline" "node9.smf" sh -c "cp node0.smf node9.smf"
run_case "stray: an increment .smf of a node not in the baseline" "$inc1/node9.smf" cp $inc1/node0.smf $inc1/node9.smf

# Two files swapped.
other_tx=$(cd "$pristine" && ls -S db/node0/tx0 | sed -n 2p | sed "s|^|db/node0/tx0/|")
run_case "swap: two partition files of one node" "$part_tx|$other_tx" swap "$part_tx" "$other_tx"
run_case "swap: node0.smf and node1.smf" "node0.smf|node1.smf" swap node0.smf node1.smf
seg_inc2_node0=$(cd "$pristine" && ls $inc2/wal/node0/*.wal | head -n 1)
run_case "swap: node0's segments of increments 1 and 2" "$seg1|$seg_inc2_node0" swap "$seg1" "$seg_inc2_node0"
run_case "swap: increment 1's node0.smf and node1.smf" "$inc1/node0.smf|$inc1/node1.smf" swap $inc1/node0.smf $inc1/node1.smf

# One node's file under another node's name.
run_case "rename: node0.smf copied over node1.smf" "node1.smf|node1&metadata" cp node0.smf node1.smf
run_case "rename: increment 1's node0.smf copied over node1.smf" "$inc1/node1.smf|$inc1&node1" \
  cp $inc1/node0.smf $inc1/node1.smf
shared=$(cd "$pristine" && comm -12 <(ls db/node0/tx0) <(ls db/node1/tx0) | head -n 1)  # a partition both hold
run_case "rename: node0's partition file copied over node1's" "db/node1/tx0/$shared" \
  cp "db/node0/tx0/$shared" "db/node1/tx0/$shared"
node1_seg=$inc1/wal/node1/$(basename "$seg1")
run_case "rename: node0's segment copied over node1's" "$node1_seg" cp "$seg1" "$node1_seg"

# ---- the summary

printf '%s\n' "${rows[@]}"
if [ -s "$work/failures.txt" ]; then
  echo
  echo "what the failing cases printed:"
  cat "$work/failures.txt"
fi
echo
echo "damage_test: ${#rows[@]} cases, $failures failed"
[ "$failures" -eq 0 ]
