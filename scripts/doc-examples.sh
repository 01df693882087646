#!/usr/bin/env bash
# Runs the command-line examples of README.md and docs/*.md and writes their
# real output into the docs, or, with --check, fails when one differs.
#
#   scripts/doc-examples.sh BUILD_DIR [--check] [NAME...]
#
# BUILD_DIR holds a built `walcut` (this script builds nothing). NAME...
# limits the run to those examples. Without --check the marked blocks are
# rewritten in place; with --check nothing is written, a difference is
# printed as a diff (documented above, what walcut printed below) and the
# exit status is 1.
#
# An example is a fenced block on the line after `<!-- example: NAME -->`.
#  - Lines starting with "$ " are commands (a line ending in "\" goes on
#    on the next one), run in order by one bash in a fresh directory, so a
#    `cd` holds for the commands after it. The lines after a command are its
#    output: standard output and error together, in the order written
#    (walcut is run line-buffered).
#  - A block without commands shows the output of a command the docs do not
#    show; hidden_command() below gives it.
#  - setup() below prepares what a block needs and does not show (a cluster
#    made by `walcut gen` with a fixed seed, a copy of a snapshot).
#  - Paths: /tmp/X in a command runs as <work>/X, and <work>/ in the output
#    reads /tmp/ again, so the docs show /tmp paths.
#  - "..." alone on a line (any indent) stands for any lines of output, and a
#    line ending in "..." for a line that starts with what comes before it;
#    both are kept when the block is rewritten.
#  - Output that differs from run to run (times, rates, the default memory
#    limit, which comes from the machine's memory, the I/O engine, the
#    numbers of a progress bar, drawn at whatever moment its timer fires) is
#    compared through normalise() below, which replaces those values by a
#    placeholder on both sides (sed rules, one per kind of value); a line
#    that matches so is left as documented, and a rewrite writes what this
#    run printed only where a line differs otherwise.
# A fenced block that looks like an example (a line starting "$ " or
# "walcut: ") without a marker is listed as unchecked, as is one marked
# `<!-- example-unchecked: WHY -->`, with WHY. The examples run side by
# side, one per core, in /dev/shm where there is one. DOC_KEEP=1 keeps the
# work directory (its path is printed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

usage() { echo "usage: scripts/doc-examples.sh BUILD_DIR [--check] [NAME...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
build=$(cd "$1" 2>/dev/null && pwd) || { echo "doc-examples: $1: no such directory" >&2; exit 2; }
shift
[ -x "$build/walcut" ] || { echo "doc-examples: $build/walcut: not built" >&2; exit 2; }
check=0
only=()
for a in "$@"; do
  case $a in
    --check) check=1 ;;
    -*) usage ;;
    *) only+=("$a") ;;
  esac
done

# In memory where there is /dev/shm: the examples' syncs cost nothing there.
scratch=/tmp
if [ -d /dev/shm ] && [ -w /dev/shm ]; then scratch=/dev/shm; fi
tmp=$(mktemp -d "$scratch/walcut-doc-XXXXXX")
tmp=$(cd "$tmp" && pwd -P)
if [ -n "${DOC_KEEP:-}" ]; then echo "doc-examples: work directory $tmp"; else trap 'kill $(jobs -p) 2>/dev/null || true; wait; rm -rf "$tmp"' EXIT; trap 'exit 143' TERM INT; fi  # the examples running stop first
mkdir -p "$tmp/bin" "$tmp/fixtures" "$tmp/blocks"
# walcut on PATH, line-buffered so that its standard output and error interleave as on a terminal.
printf '#!/bin/sh\nexec stdbuf -oL "%s/walcut" "$@"\n' "$build" >"$tmp/bin/walcut"
chmod +x "$tmp/bin/walcut"
export PATH="$tmp/bin:$PATH" LC_ALL=C TZ=UTC

# ---- fixtures: made once per run, linked into each example's directory

# make_fixture NAME: what `walcut gen` (or the worked example's program)
# writes for NAME, made once per run, before the examples.
make_fixture() {
  local made="$tmp/fixtures/$1"
  case $1 in
    bk-doc) walcut gen --out "$made" --seed 1 --txs 500 >/dev/null ;;
    gen-doc) walcut gen --out "$made" --seed 1 --txs 300 --nodes 3 --increments 2 >/dev/null ;;
    wcdoc2)  # the program of docs/snapshot-format.md, "Worked example"
      if [ -x "$build/tests/walcut_snapshot_worked_example" ]; then
        "$build/tests/walcut_snapshot_worked_example" "$made/run"
      fi ;;
    ex)  # docs/wal-format.md, "Worked example"; ex-torn and ex-bad as docs/cli.md describes them
      walcut wal synth "$made" --transactions 2 --threads 1 --entries 1 --value-bytes 4 --segment-kib 64 \
        --sync commit >/dev/null ;;
  esac
}

# fixture NAME: $work/NAME, a directory of symbolic links to the fixture's
# top-level entries (cheap: the examples share the fixture's files and only
# read them; what they write beside them is their own). The fixtures'
# directory reads /tmp/ in the output, as the work directory does.
fixture() {
  [ -d "$tmp/fixtures/$1" ] || { echo "doc-examples: no fixture $1 (for wcdoc2: build with WALCUT_BUILD_TESTS=ON)" >&2; return 1; }
  mkdir "$work/$1" && ln -s "$tmp/fixtures/$1"/* "$work/$1/"
}

# private NAME DIR: the fixture's DIR copied into $work/NAME, for an example that changes its files.
private() {
  rm "$work/$1/$2" && cp -r "$tmp/fixtures/$1/$2" "$work/$1/$2"
}

# flip FILE OFFSET: the byte at OFFSET xor 1.
flip() {
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $((b ^ 1)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# setup NAME: what example NAME needs in $work before its commands run.
setup() {
  local snp="$work/bk-doc/snapshots/snp"
  case $1 in
    gen-run | snapshot-gen | backup-round-trip | wal-worked-example | wal-rollover) ;;  # they make their own
    check-* | cli-wal-dump-select | cli-snapshot-info | cli-restore* | cli-progress-* | cli-check* | cli-backup | \
      cli-recover* | backup-* | restore-*) fixture bk-doc ;;
    snapshot-cut-records | snapshot-increment-smf | cut-tx-stamp) fixture gen-doc ;;
    cli-dump-* | snapshot-worked-* | node-meta-worked-example) fixture wcdoc2 ;;
    cli-wal-* | cli-errors)
      cp -r "$tmp/fixtures/ex" "$work/ex"
      cp -r "$work/ex" "$work/ex-torn" && flip "$work/ex-torn/0000000000000000.wal" 500  # in the last block
      cp -r "$work/ex" "$work/ex-bad" && flip "$work/ex-bad/0000000000000000.wal" 250 ;; # in the second of four
  esac
  case $1 in
    check-swap) make_swapped_copy "$work/bk-doc" ;;
    cli-check-flip) cp -r "$snp" "$work/snp-flip" && flip "$work/snp-flip/db/node0/tx0/part-13.bin" 100 ;;
    cli-restore-dry-run-damage)
      private bk-doc snapshots && flip "$snp/increments/0000000000000002/wal/node0/0000000000000001.wal" 116 ;;
    cli-recover-fresh | backup-worked-example) walcut backup "$work/bk-doc/cluster" "$work/bk-doc/backups" >/dev/null ;;
    backup-refusals)
      walcut backup "$work/bk-doc/cluster" "$work/bk-doc/backups" >/dev/null
      mkdir -p "$work/bk-doc/fresh/node2/restore"
      cp "$work/bk-doc/backups/node2.backup" "$work/bk-doc/fresh/node2/restore/"
      walcut node recover "$work/bk-doc/fresh/node2" >/dev/null ;;
  esac
}

# hidden_command NAME: the command whose output a block without commands shows.
hidden_command() {
  local restore="walcut snapshot restore /tmp/bk-doc/snapshots/snp --increment 2 --dest /tmp/bk-doc/restored"
  case $1 in
    cli-errors)
      echo "walcut wal dump /tmp/ex-bad >/dev/null; walcut wal dump /tmp/ex --type FOO"
      echo "walcut wal synth /tmp/ex3 --segment-kib 66" ;;
    cli-wal-dump-strict) echo "walcut wal dump --strict /tmp/ex-torn >/dev/null" ;;
    cli-restore-busy) echo "flock /tmp/bk-doc/restored.lock $restore" ;;  # as if another run held the lock
    cli-restore-changed) echo "$restore >/dev/null; rm -r /tmp/bk-doc/restored/node1; $restore" ;;
    # The bar's last state of the replay phase, its control characters left out.
    cli-progress-bar) echo "$restore --progress 2>&1 >/dev/null | tr '\\r' '\\n' | sed 's/\\x1b\\[K//g' | grep '^replay' | tail -n 1" ;;
    cli-progress-json) echo "$restore --progress=json 2>&1 >/dev/null | grep '\"phase\":\"replay\"' | tail -n 1" ;;
    cli-restore-dry-run-damage) echo "$restore --dry-run" ;;
    # The identity, the first files, and node0's last lines.
    restore-restored-file)
      echo "$restore >/dev/null"
      echo "sed -n '1,10p; /node0\\/node.meta/,/^dir node1\$/p' /tmp/bk-doc/restored/RESTORED" ;;
    cut-tx-stamp)
      echo "walcut wal dump /tmp/gen-doc/snapshots/snp/increments/0000000000000001/wal/node0 |"
      echo "  grep 'TX .* xid=1.297.3 \\|INC_SNAPSHOT'" ;;
    *) echo "doc-examples: example $1 shows no command and has none here" >&2; return 1 ;;
  esac
}

# snp-swap: the snapshot with node0's copy of tx0 partition 13 replaced by
# node0's later checkpointed copy (a valid file of the same group,
# partition and node), its size and CRC32C rewritten in node0.smf's
# manifest and the .smf's own CRC rewritten (docs/snapshot-format.md), so
# that only the comparison of copies can see it.
make_swapped_copy() {
  cp -r "$1/snapshots/snp" "$1/snp-swap"
  cp "$1/cluster/node0/db/tx0/part-13.bin" "$1/snp-swap/db/node0/tx0/part-13.bin"
  python3 - "$1/snp-swap" <<'EOF'
import struct, sys
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
snap = sys.argv[1]
path = b"db/node0/tx0/part-13.bin"
part = open(snap + "/" + path.decode(), "rb").read()
smf = bytearray(open(snap + "/node0.smf", "rb").read())
at = smf.index(path) + len(path)
smf[at:at + 12] = struct.pack("<QI", len(part), crc32c(part))
smf[-4:] = struct.pack("<I", crc32c(bytes(smf[:-4])))
open(snap + "/node0.smf", "wb").write(smf)
EOF
}

# ---- the blocks

# One pass over the docs: each marked block into $tmp/blocks/NAME.doc and a
# line "FILE LINE NAME" (LINE: its opening fence); on standard error, the
# blocks that look like examples and are not checked, and a name marked twice.
scan() {
  awk -v root="$root/" -v dir="$tmp/blocks" '
    FNR == 1 { file = FILENAME; sub("^" root, "", file); inside = 0; prev = "" }
    /^```/ && !inside {
      inside = 1; start = FNR; looks = 0; out = ""
      if (prev ~ /^<!-- example: [^ ]+ -->$/) {
        name = prev; sub(/^<!-- example: /, "", name); sub(/ -->$/, "", name)
        if (name in seen) { printf "example %s marked twice (%s:%d)\n", name, file, start > "/dev/stderr"; bad = 1 }
        seen[name] = 1; out = dir "/" name ".doc"; printf "" > out
        print file, start, name
      }
      why = prev ~ /^<!-- example-unchecked: / ? prev : ""; sub(/^<!-- example-unchecked: /, "", why); sub(/ -->$/, "", why)
      prev = $0; next
    }
    /^```/ && inside {
      inside = 0
      if (out != "") close(out)
      else if (looks) printf "%s:%d: unchecked: %s\n", file, start, (why != "" ? why : "no marker") > "/dev/stderr"
    }
    inside && out != "" { print > out }
    inside && (/^\$ / || /^walcut: /) { looks = 1 }
    { prev = $0 }
    END { exit bad }
  ' "$@"
}

# run_example NAME: runs the example in $tmp/work/NAME and writes what it
# printed, aligned with the block, to $tmp/blocks/NAME.got.
run_example() {
  local name=$1 work="$tmp/work/$1"
  mkdir -p "$work"
  setup "$name"
  commands "$tmp/blocks/$name.doc" "$name" >"$tmp/blocks/$name.sh" || return
  # The command lines are printed as the doc shows them (the path change undone there too); the
  # notice of a machine without io_uring is not part of any example.
  (bash "$tmp/blocks/$name.sh" "$work" "$tmp/blocks/$name.output" 2>&1 || true) |
    sed "s|$work/|/tmp/|g; s|$work\\b|/tmp|g; s|$tmp/fixtures/|/tmp/|g; /^walcut: io_uring is not available/d" \
      >"$tmp/blocks/$name.out"
  reconcile "$tmp/blocks/$name.doc" "$tmp/blocks/$name.out" >"$tmp/blocks/$name.got"
}

# The script that runs the commands of block file $1 (or the hidden command
# of NAME $2) in the directory given as its first argument and prints
# each command as shown, then its output. Each command's output goes through
# a file (its second argument) and __show, so that it ends with a line break
# (head -c does not) before the next command is shown.
commands() {
  echo 'cd "$1"; __s=0; __status() { return "$1"; }'
  echo '__show() { local l; while IFS= read -r l || [ -n "$l" ]; do printf "%s\n" "$l"; done <"$1"; }'
  if grep -q '^\$ ' "$1"; then
    awk '
      function flush() {
        if (cmd == "") return
        printf "printf %%s\\\\n %s\n__status $__s; eval %s >\"$2\" 2>&1; __s=$?; __show \"$2\"\n", q(shown), q(run)
        cmd = ""
      }
      function q(s) { gsub(/\x27/, "\x27\\\x27\x27", s); return "\x27" s "\x27" }
      cont { shown = shown "\n" $0; run = run "\n" $0; cont = /\\$/; next }
      /^\$ / { flush(); cmd = 1; shown = $0; run = substr($0, 3); cont = /\\$/; next }
      END { flush() }
    ' "$1" | sed "s|/tmp/|$work/|g"
  else
    local hidden
    hidden=$(hidden_command "$2") || return 1
    printf '{\n%s\n} >"$2" 2>&1; __show "$2"\n' "$hidden" | sed "s|/tmp/|$work/|g"
  fi
}

# reconcile EXPECTED ACTUAL: the actual transcript aligned with the
# expected one, command by command: a line that matches (after normalise)
# and an elision come out as documented, the rest as printed. So it equals
# EXPECTED exactly when the example holds, and is what a rewrite writes.
reconcile() {
  awk '
    FILENAME == ARGV[1] { e[++ne] = $0; en[ne] = normalise($0); next }
    { a[++na] = $0; an[na] = normalise($0) }
    # The values that differ from run to run, as placeholders: times, rates,
    # the default memory limit (from the machine), the most the buckets held
    # and the nodes replayed at once (from its cores), the I/O engine, the
    # numbers of a progress bar (drawn whenever its timer fires); and blanks at
    # the end of a line, which the docs leave out.
    function normalise(s, k, keys, n) {
      sub(/[ \t]+$/, "", s)                                                              # blanks at the end of a line
      gsub(/ in [0-9]+\.[0-9]+ s\)/, " in <s> s)", s)                                    # check: "(0.6 MiB read in 0.05 s)"
      n = split("verify replay finish publish", keys, " ")                              # restore: "verify 0.045s, ..."
      for (k = 1; k <= n; k++) gsub(keys[k] " [0-9]+\\.[0-9]+s", keys[k] " <s>s", s)
      gsub(/[0-9]+\.[0-9]+ MiB\/s, [0-9]+ entries\/s/, "<rate>", s)                      # restore: "replay 9.3 MiB/s, ..."
      gsub(/\(limit [0-9]+\.[0-9]+ MiB\)/, "(limit <memory>)", s)
      gsub(/[0-9]+\.[0-9]+ MiB of routed entries at most/, "<memory> MiB of routed entries at most", s)
      gsub(/"routed_bytes_peak": ?[0-9]+/, "\"routed_bytes_peak\":<memory>", s)
      gsub(/"nodes_at_once": ?[0-9]+/, "\"nodes_at_once\":<n>", s)
      gsub(/io (io_uring|pread)\)/, "io <engine>)", s)
      gsub(/"io_engine": ?"(io_uring|pread)"/, "\"io_engine\":<engine>", s)
      gsub(/"memory_limit": ?[0-9]+/, "\"memory_limit\":<memory>", s)
      n = split("seconds verify replay finish publish total elapsed_s eta_s replay_mib_per_s entries_per_s bytes_per_s", keys, " ")
      for (k = 1; k <= n; k++) gsub("\"" keys[k] "\": ?[0-9.e+-]+", "\"" keys[k] "\":<n>", s)   # JSON times and rates
      gsub(/\[[# ]*\] *[0-9.]+%  [0-9.]+\/[0-9.]+ MiB  [0-9]+ entries\/s  ETA [0-9]+s/, "[<bar>] <progress>", s)
      gsub(/WAL [0-9.]+ MiB in [0-9.]+ s \([0-9.]+ MiB\/s\)/, "WAL <size> in <s> s (<rate>)", s)   # gen
      return s
    }
    function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
    function matches(i, j, p) {
      if (en[i] == an[j]) return 1
      if (en[i] ~ /\.\.\.$/ && trim(en[i]) != "...") { p = substr(en[i], 1, length(en[i]) - 3); return substr(an[j], 1, length(p)) == p }
      return 0
    }
    # Segment: the lines after a command (or from the top) up to the next command.
    function seg_end(x, n, from, k) { k = from; while (k <= n && !(x[k] ~ /^\$ /)) k++; return k }
    function emit_seg(i0, i1, j0, j1, i, j, k, t, blanks) {
      blanks = 0; while (i1 > i0 && e[i1 - 1] == "") { i1--; blanks++ }   # blank lines before the next command
      i = i0; j = j0
      while (i < i1 || j < j1) {
        if (i < i1 && trim(e[i]) == "...") {
          # Up to the line that matches the next documented one; none: the
          # elision stands for nothing, and the lines after it are compared in order.
          print e[i]
          if (i + 1 >= i1) { j = j1 } else { k = j; while (k < j1 && !matches(i + 1, k)) k++; if (k < j1) j = k }
          i++; continue
        }
        if (i < i1 && j < j1 && matches(i, j)) { print e[i]; i++; j++; continue }
        if (j < j1) { print a[j]; j++; if (i < i1) i++; continue }
        i++   # documented, not printed: dropped
      }
      for (t = 0; t < blanks; t++) print ""
    }
    # A command line and the lines that continue it, from x[k]: where they end.
    function header_end(x, n, k) { k++; while (k <= n && x[k - 1] ~ /\\$/) k++; return k }
    END {
      i = 1; j = 1
      while (i <= ne || j <= na) {
        i1 = seg_end(e, ne, i); j1 = seg_end(a, na, j)
        emit_seg(i, i1, j, j1)
        i = i1; j = j1
        if (j <= na) { j1 = header_end(a, na, j); while (j < j1) print a[j++] }
        if (i <= ne) i = header_end(e, ne, i)
      }
    }
  ' "$1" "$2"
}

# Rewrites, in FILE, the block at fence line LINE with the lines of NEW.
rewrite() {
  awk -v from="$2" -v new="$3" '
    NR == from { print; while ((getline l < new) > 0) print l; skip = 1; next }
    skip && /^```/ { skip = 0 }
    !skip
  ' "$1" >"$1.tmp" && mv "$1.tmp" "$1"
}

# ---- the run

docs=("$root/README.md" "$root"/docs/*.md)
scan "${docs[@]}" >"$tmp/examples" 2>"$tmp/unchecked" ||
  { sed 's/^/doc-examples: /' "$tmp/unchecked" >&2; exit 2; }
for n in "${only[@]}"; do
  grep -q " $n\$" "$tmp/examples" || { echo "doc-examples: no example $n" >&2; exit 2; }
done
if [ ${#only[@]} -gt 0 ]; then
  grep -E " ($(IFS='|'; echo "${only[*]}"))\$" "$tmp/examples" >"$tmp/selected" || true
else
  cp "$tmp/examples" "$tmp/selected"
fi

# The fixtures first, side by side, then the examples, as many at a time as there are cores.
for f in bk-doc gen-doc wcdoc2 ex; do make_fixture "$f" & done
wait
parallel=$(nproc 2>/dev/null || echo 2)
running=0
while read -r file line name; do
  if [ $running -ge "$parallel" ]; then wait -n || true; running=$((running - 1)); fi
  run_example "$name" &
  running=$((running + 1))
done <"$tmp/selected"
wait

checked=0 differ=0
while read -r file line name; do
  checked=$((checked + 1))
  [ -f "$tmp/blocks/$name.got" ] || { echo "doc-examples: example $name did not run" >&2; differ=$((differ + 1)); continue; }
  cmp -s "$tmp/blocks/$name.doc" "$tmp/blocks/$name.got" && continue
  differ=$((differ + 1))
  if [ $check = 1 ]; then
    diff -u --label "$file:$line ($name, documented)" --label "$name, as run" \
      "$tmp/blocks/$name.doc" "$tmp/blocks/$name.got" || true
  fi
done <"$tmp/selected"
# Bottom up in each file, so that a rewrite does not move the blocks still to come.
if [ $check = 0 ]; then
  sort -k1,1 -k2,2rn "$tmp/selected" | while read -r file line name; do
    if ! cmp -s "$tmp/blocks/$name.doc" "$tmp/blocks/$name.got"; then
      rewrite "$root/$file" "$line" "$tmp/blocks/$name.got"
      echo "doc-examples: rewrote $name ($file:$line)"
    fi
  done
fi
sed 's/^/doc-examples: /' "$tmp/unchecked" >&2
if [ $check = 1 ]; then
  if [ $differ -gt 0 ]; then
    echo "doc-examples: $differ of $checked examples differ from what walcut prints (above); run scripts/doc-examples.sh $build to rewrite them" >&2
    exit 1
  fi
  echo "doc-examples: $checked examples as documented"
fi
