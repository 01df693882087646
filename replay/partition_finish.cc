#include "replay/partition_finish.h"

#include <algorithm>
#include <iterator>
#include <vector>

#include "engine/partition_file.h"

namespace walcut {
namespace {

constexpr uint64_t kBaseReserveBytes = 64 << 20;

// The copy's file in the full snapshot as a sorted run: checked against
// its manifest entry and the copy it must be.
Status load_base(uint32_t group_id, uint16_t partition, const CopyToFinish& c, RunBuffer& run) {
  run.clear();
  // What the manifest says, up to a bound: the scan checks the file's size
  // against it, and a damaged manifest claiming terabytes got "out of
  // memory" here instead of the file's name and size.
  if (c.listed) run.reserve(std::min<uint64_t>(c.listed->bytes, kBaseReserveBytes));
  Result<PartitionFileScan> scan = scan_snapshot_partition(
      c.base_path, c.listed, {group_id, partition, c.node_index},
      [&](std::string_view key, ByteSpan value, const Version& v) {
        store_run_entry(run.append(kRunEntryFixedBytes + key.size() + value.size()), key, value, v, false);
      });
  return scan.status();
}

// One copy's final entries, deletes as tombstones (`entries`), and the
// runs they point into.
struct CopyFinal {
  std::vector<RunBuffer> runs;
  SortedEntries entries;
};

// The copy's final entries: its file, its spilled slices, then what is in
// memory (newest first: its file, what is in memory, then its slices from
// the last spilled to the first), merged without copying an entry.
Status merge_copy(uint32_t group_id, uint16_t partition, CopyToFinish& c, CopyFinal& out) {
  WALCUT_RETURN_IF_ERROR(load_base(group_id, partition, c, out.runs.emplace_back()));
  if (c.routed == nullptr) {
    out.entries = entries_of(out.runs.back().span());
    return {};
  }
  for (const SpillSlice& slice : c.routed->spilled) {
    WALCUT_RETURN_IF_ERROR(read_spill_slice(slice, out.runs.emplace_back()));
  }
  c.routed->spilled.clear();
  std::vector<SortedEntries> lists;  // older first
  for (const RunBuffer& r : out.runs) lists.push_back(entries_of(r.span()));
  lists.push_back(c.routed->bucket.sorted());
  if (c.routed->newest_first) std::reverse(lists.begin() + 1, lists.end());
  out.entries = merge_sorted(lists);
  return {};
}

// One run of the copy's final entries, its inputs freed: an ATOMIC
// partition's copies wait for each other, and a copy's file and spilled
// slices together can be much more than its final entries.
void compact(CopyFinal& c, CopyToFinish& copy) {
  RunBuffer merged;
  append_entries(c.entries, merged);
  c.runs.clear();
  c.entries = entries_of(merged.span());
  c.runs.push_back(std::move(merged));
  if (copy.routed) copy.routed->bucket.clear();
}

// Whether two entries of one key (the caller compared the keys) hold the
// same version, tombstone and value.
bool same_contents(const RunEntry& a, const RunEntry& b) {
  return a.version == b.version && a.tombstone == b.tombstone &&
         std::equal(a.value.begin(), a.value.end(), b.value.begin(), b.value.end());
}

// The newest version of each key among the copies (a tombstone included),
// into `out`; counts the entries each written copy loses or changes.
uint64_t repair(std::span<const CopyFinal> finals, std::span<const CopyToFinish> copies, SortedEntries& out) {
  std::vector<size_t> at(finals.size(), 0);
  uint64_t changed = 0;
  for (;;) {
    int best = -1;
    RunEntry winner;
    for (size_t i = 0; i < finals.size(); ++i) {
      if (at[i] >= finals[i].entries.size()) continue;
      RunEntry e = run_entry_at(finals[i].entries[at[i]]);
      const int c = best < 0 ? -1 : compare_keys(e.key, winner.key);
      if (c < 0 || (c == 0 && winner.version < e.version)) {
        best = static_cast<int>(i);
        winner = e;
      }
    }
    if (best < 0) return changed;
    for (size_t i = 0; i < finals.size(); ++i) {
      bool has = at[i] < finals[i].entries.size() && same_key(run_entry_key(finals[i].entries[at[i]]), winner.key);
      RunEntry mine = has ? run_entry_at(finals[i].entries[at[i]]) : RunEntry{};
      bool present_before = has && !mine.tombstone;
      bool same = has ? same_contents(mine, winner) : winner.tombstone;
      if (!copies[i].out_path.empty() && !same && (present_before || !winner.tombstone)) ++changed;
      if (has) ++at[i];
    }
    out.push_back(reinterpret_cast<const std::byte*>(winner.key.data()) - kRunEntryFixedBytes);
  }
}

// Writes entries in key order, without the tombstones, as the partition
// file of one copy: a run entry is laid out as in the file, and goes there
// as it is.
Status write_copy(uint32_t group_id, uint16_t partition, const CopyToFinish& c, const SortedEntries& entries,
                  FinishReport& report) {
  const auto tombstone = [](const std::byte* p) { return load_u32(p + 4) == kTombstoneMark; };
  SortedEntries live;
  const bool any_tombstone = std::any_of(entries.begin(), entries.end(), tombstone);
  if (any_tombstone) std::remove_copy_if(entries.begin(), entries.end(), std::back_inserter(live), tombstone);
  const SortedEntries& written = any_tombstone ? live : entries;
  PartitionFileWritten w;
  WALCUT_RETURN_IF_ERROR(write_partition_file_of(c.out_path, {group_id, partition, c.node_index}, written, c.write,
                                                 &w));  // the caller syncs the tree once
  report.files_written += 1;
  report.files.push_back({c.out_path, w});
  report.entries_written += written.size();
  return {};
}

}  // namespace

void prefetch_spilled(std::span<const CopyToFinish> copies) {
  for (const CopyToFinish& c : copies) {
    if (c.routed == nullptr) continue;
    for (const SpillSlice& slice : c.routed->spilled) prefetch_spill_slice(slice);
  }
}

Result<FinishReport> finish_partition(uint32_t group_id, uint16_t partition, bool atomic,
                                      std::span<CopyToFinish> copies) {
  FinishReport report;
  std::vector<CopyFinal> finals(copies.size());
  for (size_t i = 0; i < copies.size(); ++i) {
    WALCUT_RETURN_IF_ERROR(merge_copy(group_id, partition, copies[i], finals[i]));
    if (!atomic && !copies[i].out_path.empty()) {
      WALCUT_RETURN_IF_ERROR(write_copy(group_id, partition, copies[i], finals[i].entries, report));
      finals[i] = {};
      if (copies[i].routed) copies[i].routed->bucket.clear();
    } else if (finals[i].runs.size() > 1) {  // spilled
      compact(finals[i], copies[i]);
    }
  }
  if (!atomic) return report;
  SortedEntries agreed;
  report.atomic_repaired = repair(finals, copies, agreed);
  for (const CopyToFinish& c : copies) {
    if (!c.out_path.empty()) WALCUT_RETURN_IF_ERROR(write_copy(group_id, partition, c, agreed, report));
  }
  for (CopyToFinish& c : copies) {
    if (c.routed) c.routed->bucket.clear();
  }
  return report;
}

}  // namespace walcut
