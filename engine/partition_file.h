// Partition files: one copy of one partition on disk, as written by a
// checkpoint or a snapshot. docs/partition-format.md is the specification.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "engine/group.h"
#include "engine/partition.h"
#include "io/status.h"

namespace walcut {

// Order-independent hashes of a partition's content (sums of per-entry
// hashes), so copies compare without sorting and maps run in parallel.
struct PartitionHashes {
  uint64_t entries = 0;
  uint64_t key_value_hash = 0;  // sum of XXH3(key length, key, value)
  uint64_t version_hash = 0;    // sum of XXH3(key length, key, version)
  bool operator==(const PartitionHashes&) const = default;
};

// Adds one entry to running hashes.
void add_to_hashes(PartitionHashes& h, const std::string& key, const StoredValue& v);
void add_to_hashes(PartitionHashes& h, std::string_view key, ByteSpan value, const Version& version);
PartitionHashes hash_entries(const EntryMap& entries);

struct PartitionFileInfo {
  uint32_t group_id = 0;
  uint16_t partition = 0;
  uint16_t node_index = 0;  // the node whose copy this is
};

// One entry as it is read or written: key and value point into the
// caller's bytes, valid for the call.
using PartitionEntryFn = std::function<void(std::string_view key, ByteSpan value, const Version& version)>;

// How a partition file reaches its path.
enum class PartitionWrite {
  // Through a temporary file: write, fdatasync, rename over the path. The
  // directory is not synced (the caller syncs it once for many files).
  kReplace,
  // Created at the path (it must not exist) and not synced: for a private
  // staging directory that is synced once (sync_filesystem()) and
  // published whole, where a half-written file is never seen. Its
  // writeback is started as it is closed (sync_file_range), so that its
  // pages are soon clean: where a cgroup's memory limit charges the page
  // cache, dirty pages could only wait for that one sync.
  kCreate,
  // As kCreate, its pages left dirty for the one sync to write: where
  // memory is plenty, one writeback of thousands of small files costs less
  // than starting each file's apart (docs/restore.md, "Finish").
  kCreateCached,
};

// The bytes a write put in the file: its size and CRC32C.
struct PartitionFileWritten {
  uint64_t bytes = 0;
  uint32_t crc32c = 0;
};

// Writes `entries` to `path` (PartitionWrite::kReplace). Cost: one
// sequential write of the entries.
Status write_partition_file(const std::string& path, const PartitionFileInfo& info, const EntryMap& entries);
// Writes entries given by the address of their bytes, each laid out as in
// a block (docs/partition-format.md: u32 key_bytes, u32 value_bytes, the
// version, key, value), in strictly increasing key order (refused
// otherwise, and nothing is left at `path`). Each is copied into its
// block as it is: a restore keeps its entries in this layout
// (replay/entry_run.h). `written`, when given, gets the file's size and
// CRC32C.
Status write_partition_file_of(const std::string& path, const PartitionFileInfo& info,
                               std::span<const std::byte* const> entries, PartitionWrite how = PartitionWrite::kReplace,
                               PartitionFileWritten* written = nullptr);

struct PartitionFile {
  PartitionFileInfo info;
  EntryMap entries;
  PartitionHashes hashes;  // as stored in the footer, and verified
};

// Reads and verifies a partition file: header, every block's CRC, key
// order, footer count and hashes. Any damage is kCorruption naming the
// file and the byte offset.
Result<PartitionFile> read_partition_file(const std::string& path);

// Every check of read_partition_file() on bytes already read (`path` names
// them in errors), without building the map: `each` (may be empty) sees
// every entry in key order.
struct PartitionFileScan {
  PartitionFileInfo info;
  PartitionHashes hashes;  // as stored in the footer, and verified
};
Result<PartitionFileScan> scan_partition_file(const std::string& path, ByteSpan bytes, const PartitionEntryFn& each);

// "part-<p>.bin"
std::string partition_file_name(uint16_t partition);
// "<db_dir>/<group>/part-<p>.bin": a partition file under a node's db/ directory.
std::string partition_path(const std::string& db_dir, const CacheGroup& g, uint16_t partition);
// The partition of a name partition_file_name() gives; nullopt for any
// other name (leading zeros included).
std::optional<uint16_t> parse_partition_file_name(const std::string& name);

}  // namespace walcut
