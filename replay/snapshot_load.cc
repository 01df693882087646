#include "replay/snapshot_load.h"

#include <algorithm>

#include "engine/affinity.h"
#include "engine/snapshot.h"
#include "io/names.h"

namespace walcut {
namespace {

// One copy to load: its group, partition, file and manifest entry.
struct CopyToLoad {
  const CacheGroup* group;
  uint16_t partition;
  std::string path;
  const ManifestEntry* listed;
};

// The copies node `me` owns of the groups asked for; each must be listed
// in its manifest, as a restore requires.
Result<std::vector<CopyToLoad>> copies_to_load(const std::string& snapshot_dir, const SnapshotMeta& me,
                                               const std::vector<std::string>& groups) {
  std::vector<CopyToLoad> copies;
  Affinity aff(me.groups, me.baseline);
  for (const CacheGroup& g : me.groups) {
    if (!groups.empty() && std::count(groups.begin(), groups.end(), g.name) == 0) continue;
    for (uint16_t p = 0; p < g.partitions; ++p) {
      if (!aff.owns(g.id, p, me.node_index)) continue;
      const std::string rel = snapshot_partition_path(me.node_id, g.name, p);
      Result<std::string> path = path_under(snapshot_dir, rel);  // names from the snapshot stay under it
      if (!path.ok()) return path.status();
      const ManifestEntry* listed = find_listed(me, rel);
      if (!listed) {
        return Status::corruption(path.value() + ": node " + me.node_id + " owns group " + g.name + " partition " +
                                  std::to_string(p) + " but its manifest does not list this file");
      }
      copies.push_back(CopyToLoad{&g, p, std::move(path).value(), listed});
    }
  }
  return copies;
}

}  // namespace

Status load_snapshot_node(const std::string& snapshot_dir, uint16_t node_index, const SnapshotEntryFn& fn,
                          const ReplayOptions& options, SnapshotLoadReport& report) {
  Result<SnapshotMeta> me = read_node_snapshot_meta(snapshot_dir, node_index, options.groups);
  if (!me.ok()) return me.status();
  Result<std::vector<CopyToLoad>> copies = copies_to_load(snapshot_dir, me.value(), options.groups);
  if (!copies.ok()) return copies.status();
  uint64_t bytes_total = 0;
  for (const CopyToLoad& c : copies.value()) bytes_total += c.listed->bytes;
  ProgressHub progress(options.progress, "load", bytes_total);
  SnapshotEntry e;
  e.node_index = node_index;
  Status failed;  // the callback's first error: the rest of the file is skipped
  for (const CopyToLoad& c : copies.value()) {
    if (options.cancel && *options.cancel) return Status::cancelled("load cancelled");
    e.group = c.group;
    e.partition = c.partition;
    uint64_t entries = 0;
    Result<PartitionFileScan> scan = scan_snapshot_partition(
        c.path, c.listed, {c.group->id, c.partition, node_index},
        [&](std::string_view key, ByteSpan value, const Version& version) {
          if (!failed.ok()) return;
          e.key = key;
          e.value = value;
          e.version = version;
          failed = fn(e);
          entries += failed.ok();
        });
    WALCUT_RETURN_IF_ERROR(failed);
    if (!scan.ok()) return scan.status();
    report.files += 1;
    report.bytes += c.listed->bytes;
    report.entries += entries;
    progress.read(c.listed->bytes, me->node_id);
  }
  progress.report();
  return {};
}

}  // namespace walcut
