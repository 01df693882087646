#include "replay/partition_finish.h"

#include <vector>

#include "engine/partition_file.h"

namespace walcut {
namespace {

// The copy's file in the full snapshot as a sorted run: checked against
// its manifest entry and the copy it must be.
Status load_base(uint32_t group_id, uint16_t partition, const CopyToFinish& c, RunBuffer& run) {
  run.clear();
  if (c.listed) run.reserve(c.listed->bytes);
  Result<PartitionFileScan> scan = scan_snapshot_partition(
      c.base_path, c.listed ? &*c.listed : nullptr, {group_id, partition, c.node_index},
      [&](std::string_view key, ByteSpan value, const Version& v) {
        store_run_entry(run.append(kRunEntryFixedBytes + key.size() + value.size()), key, value, v, false);
      });
  return scan.status();
}

// The copy's final entries, deletes as tombstones: its file, its spilled
// slices, then what is in memory.
Status merge_copy(uint32_t group_id, uint16_t partition, CopyToFinish& c, RunBuffer& out) {
  RunBuffer base;
  WALCUT_RETURN_IF_ERROR(load_base(group_id, partition, c, base));
  if (c.routed == nullptr) {
    out = std::move(base);
    return {};
  }
  std::vector<RunBuffer> parts;
  parts.reserve(c.routed->spilled.size() + 2);
  parts.push_back(std::move(base));
  for (const SpillSlice& slice : c.routed->spilled) {
    WALCUT_RETURN_IF_ERROR(read_spill_slice(slice, parts.emplace_back()));
  }
  parts.push_back(c.routed->bucket.take());
  c.routed->spilled.clear();
  std::vector<ByteSpan> runs;
  size_t total = 0;
  for (const RunBuffer& p : parts) {
    runs.push_back(p.span());
    total += p.size();
  }
  out.clear();
  out.reserve(total);
  merge_sorted_runs(runs, out);
  return {};
}

bool same_entry(const RunEntry& a, const RunEntry& b) {
  return a.version == b.version && a.tombstone == b.tombstone && a.key == b.key &&
         std::equal(a.value.begin(), a.value.end(), b.value.begin(), b.value.end());
}

// The newest version of each key among the copies (a tombstone included),
// into `out`; counts the entries each written copy loses or changes.
uint64_t repair(std::span<const RunBuffer> finals, std::span<const CopyToFinish> copies, RunBuffer& out) {
  std::vector<size_t> at(finals.size(), 0);
  uint64_t changed = 0;
  for (;;) {
    int best = -1;
    RunEntry winner;
    for (size_t i = 0; i < finals.size(); ++i) {
      if (at[i] >= finals[i].size()) continue;
      RunEntry e = run_entry_at(finals[i].data() + at[i]);
      if (best < 0 || e.key < winner.key || (e.key == winner.key && winner.version < e.version)) {
        best = static_cast<int>(i);
        winner = e;
      }
    }
    if (best < 0) return changed;
    for (size_t i = 0; i < finals.size(); ++i) {
      bool has = at[i] < finals[i].size() && run_entry_key(finals[i].data() + at[i]) == winner.key;
      RunEntry mine = has ? run_entry_at(finals[i].data() + at[i]) : RunEntry{};
      bool present_before = has && !mine.tombstone;
      bool same = has ? same_entry(mine, winner) : winner.tombstone;
      if (!copies[i].out_path.empty() && !same && (present_before || !winner.tombstone)) ++changed;
      if (has) at[i] += run_entry_size(finals[i].data() + at[i]);
    }
    const std::byte* p = reinterpret_cast<const std::byte*>(winner.key.data()) - kRunEntryFixedBytes;
    size_t n = run_entry_size(p);
    std::memcpy(out.append(n), p, n);
  }
}

// Writes a sorted run, without its tombstones, as the partition file of
// one copy.
Status write_copy(uint32_t group_id, uint16_t partition, const CopyToFinish& c, const RunBuffer& run,
                  FinishReport& report) {
  uint64_t written = 0;
  auto source = [&](const PartitionEntryFn& fn) {
    for (size_t at = 0; at < run.size(); at += run_entry_size(run.data() + at)) {
      RunEntry e = run_entry_at(run.data() + at);
      if (e.tombstone) continue;
      fn(e.key, e.value, e.version);
      ++written;
    }
  };
  WALCUT_RETURN_IF_ERROR(write_partition_file_from(c.out_path, {group_id, partition, c.node_index}, source,
                                                   PartitionWrite::kCreate));  // the caller syncs the tree once
  report.files_written += 1;
  report.entries_written += written;
  return {};
}

}  // namespace

Result<FinishReport> finish_partition(uint32_t group_id, uint16_t partition, bool atomic,
                                      std::span<CopyToFinish> copies) {
  FinishReport report;
  std::vector<RunBuffer> finals(copies.size());
  for (size_t i = 0; i < copies.size(); ++i) {
    WALCUT_RETURN_IF_ERROR(merge_copy(group_id, partition, copies[i], finals[i]));
    if (!atomic && !copies[i].out_path.empty()) {
      WALCUT_RETURN_IF_ERROR(write_copy(group_id, partition, copies[i], finals[i], report));
      finals[i].release();
    }
  }
  if (!atomic) return report;
  RunBuffer agreed;
  report.atomic_repaired = repair(finals, copies, agreed);
  for (const CopyToFinish& c : copies) {
    if (!c.out_path.empty()) WALCUT_RETURN_IF_ERROR(write_copy(group_id, partition, c, agreed, report));
  }
  return report;
}

}  // namespace walcut
