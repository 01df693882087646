// A deliberately naive replayer, the yardstick of walcut_restore_bench: one
// thread, pread in 1 MiB pieces, each block's CRC checked, decompressed and
// parsed with the io/ functions, the cut filter applied, and entries put
// into a std::unordered_map per (node, group, partition). No pipeline, no
// io_uring, no O_DIRECT, no partition files: the WAL's entries alone.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <unordered_map>

#include "io/status.h"

namespace walcut::bench {

struct NaiveReplayResult {
  uint64_t nodes = 0;
  uint64_t segments = 0;
  uint64_t blocks = 0;
  uint64_t records = 0;
  uint64_t entries_applied = 0;
  uint64_t entries_filtered = 0;   // outside the cut (at or after the full snapshot's pointer)
  uint64_t file_bytes_read = 0;    // bytes pread, zeros after the last block included
  uint64_t block_bytes = 0;        // block headers and stored payloads up to the FINISH record
  uint64_t raw_payload_bytes = 0;  // uncompressed payloads of the same blocks
  uint64_t partitions = 0;         // (node, group, partition) maps at the end
  uint64_t keys = 0;               // keys in them
  double seconds = 0;
  // Where the time went, summed over blocks (clock reads around each step).
  double filter_s = 0;  // load_replay_filter: finding each node's FINISH record
  double read_s = 0;    // pread
  double crc_s = 0;     // header parse and block CRC32C
  double decode_s = 0;  // block_raw_payload: LZ4, or nothing for codec none
  double parse_s = 0;   // for_each_record, for_each_data_entry
  double apply_s = 0;   // the cut filter, then the unordered_map inserts and erases
};

// Replays increments 1..n of every node of the snapshot into fresh maps.
// Cost: one pass over the segment files; memory: one copy of every key and
// value it keeps, plus 1 MiB of read buffer and one decompressed block.
Result<NaiveReplayResult> naive_replay(const std::string& snapshot_dir, uint64_t n);

}  // namespace walcut::bench
