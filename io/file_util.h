// Small POSIX helpers shared by the writers: each returns a Status naming
// the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/coding.h"
#include "io/status.h"

namespace walcut {

// Writes all of `data` at `offset`, retrying short writes and EINTR.
Status pwrite_all(int fd, ByteSpan data, uint64_t offset, const std::string& path);
// fdatasync, with the path in the error.
Status sync_file(int fd, const std::string& path);
// fsync of a directory, so a rename or create in it is durable.
Status sync_dir(const std::string& dir);
// The whole file. Cost: one read of it into memory.
Result<Bytes> read_file_bytes(const std::string& path);
// syncfs() of the filesystem that holds `path`: every file written there
// so far is durable. One call instead of an fdatasync per file, for many
// files written into a staging directory.
Status sync_filesystem(const std::string& path);
// Creates or replaces `path` with `bytes` and fdatasyncs it (no rename:
// for files inside a staging directory that is renamed as a whole).
Status write_file_synced(const std::string& path, ByteSpan bytes);
// The segment files (NNNNNNNNNNNNNNNN.wal) of a directory, by index.
Result<std::vector<std::string>> list_segment_files(const std::string& dir);

}  // namespace walcut
