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
// The whole file: the one reader of small files (metadata, map files). Every
// error is kIoError naming the path and the errno: missing (ENOENT), a
// directory (EISDIR), no permission (EACCES), a failed read; or a path that
// is not a regular file (a FIFO is refused without waiting for a writer).
// Cost: one read of it into memory.
Result<Bytes> read_file_bytes(const std::string& path);
// syncfs() of the filesystem that holds `path`: every file written there
// so far is durable. One call instead of an fdatasync per file, for many
// files written into a staging directory.
Status sync_filesystem(const std::string& path);
// Creates or replaces `path` with `bytes` and fdatasyncs it (no rename:
// for files inside a staging directory that is renamed as a whole).
Status write_file_synced(const std::string& path, ByteSpan bytes);
// The names of a directory's entries (not "." or ".."), sorted. Errors name
// the directory and the errno.
Result<std::vector<std::string>> list_dir(const std::string& dir);
// The segment files (NNNNNNNNNNNNNNNN.wal) of a directory, by index.
Result<std::vector<std::string>> list_segment_files(const std::string& dir);

}  // namespace walcut
