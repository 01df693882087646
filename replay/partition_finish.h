// The last step of a restore for one partition: each copy's file in the
// full snapshot, merged with the entries replay routed to it (spilled
// slices, then what is in memory; a later write of a key wins), the
// copies of an ATOMIC partition made to agree (the newest version of each
// key wins, a delete included), and the result written as partition
// files, sorted, without the deletes.
//
// Memory: the copies' files of this one partition, read into runs, and
// 8 bytes per entry: the merge and the repair order pointers into those
// runs and into the buckets, and the files are written from them (the
// entries are not copied again).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "engine/partition_file.h"
#include "engine/snapshot.h"
#include "io/status.h"
#include "replay/route_sink.h"

namespace walcut {

struct CopyToFinish {
  uint16_t node_index = 0;
  std::string base_path;                // the copy's file in the full snapshot
  // Its manifest entry, in the snapshot metadata the caller holds (a copy
  // here was a tenth of a restore's memory per partition file); null: the
  // manifest does not list it.
  const ManifestEntry* listed = nullptr;
  RoutedCopy* routed = nullptr;         // its entries from the WAL; null: none were replayed
  std::string out_path;                 // where to write it; empty: a peer, only compared
  PartitionWrite write = PartitionWrite::kCreate;  // kCreate or kCreateCached
};

struct WrittenFile {
  std::string path;  // the copy's out_path
  PartitionFileWritten written;  // its size and CRC32C, computed as it was written
};

struct FinishReport {
  uint64_t files_written = 0;
  uint64_t entries_written = 0;
  uint64_t atomic_repaired = 0;  // entries of written copies changed by the ATOMIC repair
  std::vector<WrittenFile> files;  // one per file written
};

// Finishes the copies of partition `partition` of group `group_id`, all of
// one partition. `atomic`: repair them against each other first. Files are
// written unsynced (the caller syncs the tree once). Frees the routed
// entries as it goes.
Result<FinishReport> finish_partition(uint32_t group_id, uint16_t partition, bool atomic,
                                      std::span<CopyToFinish> copies);

// Asks the kernel to start reading the copies' spilled slices (a hint),
// so that their reads overlap each other and the finish's work.
void prefetch_spilled(std::span<const CopyToFinish> copies);

}  // namespace walcut
