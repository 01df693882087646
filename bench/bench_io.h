// What the benchmark programs share: the plain sequential read they are
// judged against, emptying the page cache of the files they read, the
// library's notices kept for the report, and the name of the filesystem.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "io/status.h"

namespace walcut::bench {

// Writes back and drops the files' cached pages. Returns the bytes still
// resident afterwards (0 when it worked).
Result<uint64_t> evict_from_page_cache(const std::vector<std::string>& paths);

// Opens `path` for reading, with O_DIRECT when `direct` and the filesystem
// allows it (one that does not refuses with EINVAL, and the file is opened
// without); `direct_used` says whether it was. -1 and errno on failure.
int open_for_read(const std::string& path, bool direct, bool& direct_used);

struct PlainRead {
  uint64_t bytes = 0;
  bool direct_used = false;  // every file was read with O_DIRECT
};

// One file after another, read() in pieces of `chunk_bytes` (a multiple of
// 4 KiB) into one aligned buffer, through open_for_read().
Result<PlainRead> read_files(const std::vector<std::string>& paths, bool direct, size_t chunk_bytes = 1 << 20);

// The library's one-line notices (io_uring refused, O_DIRECT refused):
// printed on stderr as "walcut: ..." and kept for the report's JSON
// (notices()). Thread-safe; give collect_notice as ReadOptions::notice.
void collect_notice(const std::string& text);
std::vector<std::string> notices();

// The name of a statfs() f_type ("ext4", "xfs", ...; "unknown").
std::string filesystem_name(long f_type);

}  // namespace walcut::bench
