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
  std::map<std::pair<uint32_t, uint16_t>, EntryMap> partitions;
};

// Writes a backup file: temporary name, fdatasync, rename, directory fsync.
// Every section carries its own CRC32C. Cost: one sequential write of the data.
Status write_backup_file(const std::string& path, const BackupMeta& meta,
                         const std::map<std::pair<uint32_t, uint16_t>, std::shared_ptr<const EntryMap>>& partitions);
// Reads and verifies a backup file; kCorruption names the file and offset.
Result<BackupContents> read_backup_file(const std::string& path);

inline constexpr const char* kBackupExtension = ".backup";
inline constexpr const char* kRestoreDir = "restore";

}  // namespace walcut
