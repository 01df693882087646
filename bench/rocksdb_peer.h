// The RocksDB peer of walcut_restore_bench: the entries a restore applies
// from the WAL, written into a fresh RocksDB with its WAL on (one
// WriteBatch per walcut DATA record), the DB closed with its memtable
// unflushed, so that the next DB::Open must recover every entry from its
// WAL; that open is what is timed. Built only where RocksDB is found
// (pkg-config `rocksdb`, Debian's librocksdb-dev); elsewhere
// rocksdb_peer_built() is false and the calls return an error.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "io/status.h"

namespace walcut::bench {

bool rocksdb_peer_built();
std::string rocksdb_version();  // "7.8.3", or "" when not built

// The DB left by the write phase (the "crash").
struct RocksPeerData {
  std::string crashed_dir;
  uint64_t batches = 0;      // WriteBatches: walcut DATA records with an entry restore applies
  uint64_t entries = 0;      // puts + deletes
  uint64_t puts = 0;
  uint64_t deletes = 0;
  uint64_t key_bytes = 0;    // RocksDB keys: node, group and partition (8 bytes) + walcut's key
  uint64_t value_bytes = 0;
  uint64_t wal_bytes = 0;    // of the *.log files in crashed_dir: what recovery replays
  uint64_t sst_files = 0;    // in crashed_dir: 0, nothing was flushed before the crash
  double write_s = 0;
};

// Writes the crashed DB into DIR/rocksdb-crashed for restoring increments
// 1..n of `snapshot_dir` (segment files per node index, in order), or finds
// it there from an earlier run (DIR/ROCKSDB_WRITTEN, written last).
Result<RocksPeerData> prepare_rocksdb_peer(const std::string& snapshot_dir, uint64_t n,
                                           const std::vector<std::pair<uint16_t, std::vector<std::string>>>& segments,
                                           const std::string& dir);

struct RocksRecovery {
  double open_s = 0;          // DB::Open with default options: WAL replay and its flushes
  uint64_t sst_files_after = 0;
};

// Copies the crashed DB to `work_dir`, reads its files once (the page cache
// warm, as for walcut's warm restores), times DB::Open, closes the DB and
// removes `work_dir`.
Result<RocksRecovery> time_rocksdb_recovery(const RocksPeerData& d, const std::string& work_dir);

}  // namespace walcut::bench
