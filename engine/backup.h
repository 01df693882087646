// Online backup: one self-checking file holding every partition of a node
// at one point of its WAL, and its restore when the node next starts.
// docs/backup-format.md is the specification.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "engine/node_meta.h"
#include "engine/partition.h"

namespace walcut {

// What a backup holds besides the partitions.
struct BackupMeta {
  NodeMeta node;          // identity, baseline, groups, topology version, the checkpoint it was taken after
  WalPointer consistent;  // every record before this pointer is in the backup, none after
};

struct BackupContents {
  BackupMeta meta;
  std::map<PartitionId, EntryMap> partitions;
};

// Writes a backup file: temporary name, fdatasync, rename, directory fsync.
// Every section carries its own CRC32C. Cost: one sequential write of the data.
Status write_backup_file(const std::string& path, const BackupMeta& meta,
                         const std::map<PartitionId, std::shared_ptr<const EntryMap>>& partitions);
// Reads and verifies a backup file; kCorruption names the file and offset.
Result<BackupContents> read_backup_file(const std::string& path);

inline constexpr const char* kBackupExtension = ".backup";
inline constexpr const char* kRestoreDir = "restore";

// Applies <node_dir>/restore/<name>.backup, if one waits there, before the
// node opens (docs/backup-format.md, "Restore at start-up"), so that a
// crash at any step leaves either the old state with the file waiting, or,
// once the next open has finished the work, the new state with the file
// gone. `expected` is the identity the node is opened with (nullptr: any);
// a node.meta already there wins over it. Returns the path of the backup
// applied, or "" when none waited.
Result<std::string> apply_waiting_backup(const std::string& node_dir, const NodeMeta* expected);

}  // namespace walcut
