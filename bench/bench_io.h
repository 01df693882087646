// What the end-to-end benchmarks share: the plain sequential read they are
// judged against, and emptying the page cache of the files they read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/status.h"

namespace walcut::bench {

// Writes back and drops the files' cached pages. Returns the bytes still
// resident afterwards (0 when it worked).
Result<uint64_t> evict_from_page_cache(const std::vector<std::string>& paths);

// One file after another, read() in 1 MiB pieces into one aligned buffer
// (O_DIRECT when `direct` and the filesystem allows it). Returns the bytes
// read.
Result<uint64_t> read_files(const std::vector<std::string>& paths, bool direct);

// "64M", "1G", "4096" -> bytes.
bool parse_bytes(const std::string& text, uint64_t& bytes);

}  // namespace walcut::bench
