// What every walcut verb shares: exit codes, error printing, reader flags.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <cstdint>
#include <string>
#include <vector>

#include "io/block_reader.h"
#include "io/status.h"

namespace walcut::cli {

// Exit status of every verb.
enum Exit : int { kExitOk = 0, kExitFindings = 1, kExitUsage = 2, kExitData = 3 };

// Prints "walcut: <status>" on stderr and returns kExitData (or kExitUsage
// for an invalid argument).
int fail(const Status& s);

// Decimal digits only, no sign, spaces or prefix, within u64; nullopt otherwise.
std::optional<uint64_t> parse_decimal(const std::string& text);

// The check of every numeric flag: decimal digits only, from `min` to `max`.
// A negative, empty, fractional or out-of-range value is a usage error
// naming the flag (CLI11 alone wraps "-1" to 2^64 - 1 and reads "" as 0).
CLI::Validator whole_number(uint64_t min, uint64_t max);

// The check of a flag whose empty value would mean "not given" (an unset
// shell variable): an empty value is a usage error naming the flag.
CLI::Validator not_empty();

// --group-read, on every verb that creates files: what it creates may be
// read by the owner's group (0750 / 0640 instead of 0700 / 0600).
void add_group_read_flag(CLI::App& app);

// --io, on every verb that reads segments: the engine, auto (io_uring,
// else pread), uring or pread; io_engine_of() turns the text into it.
void add_io_engine_flag(CLI::App& app, std::string& io);
IoEngine io_engine_of(const std::string& io);

// --queue-depth and --chunk-kib: how many reads are in flight and how
// large, for the wal verbs and the restore.
struct ReadSizeFlags {
  uint32_t queue_depth = ReadOptions{}.queue_depth;
  uint32_t chunk_kib = 0;  // 0: io's default, 256 buffered, 1024 with --direct
  void add_to(CLI::App& app, const std::string& queue_depth_help);
  // Sets them in `io` (after io.direct: the default chunk depends on it);
  // a chunk that is not a multiple of 4 KiB, or read buffers past 2 GiB
  // (2 x queue depth x chunk), is a usage error.
  Status apply(ReadOptions& io) const;
};

// The reader flags of the verbs that read segments.
struct ReaderFlags {
  std::string io = "auto";
  bool direct = false;
  bool strict = false;
  ReadSizeFlags sizes;
  void add_to(CLI::App& app);
  Result<BlockReaderOptions> options() const;
};

// "96M" -> 96 MiB: a number of bytes, with an optional K, M, G or T
// (powers of 1024; "MiB", "MB" alike). nullopt when it does not parse or
// overflows.
std::optional<uint64_t> parse_byte_size(const std::string& text);

// InvalidArgument naming `path` unless it is a directory (or a link to one):
// a missing SNAPSHOT_DIR is a usage error, as a missing SEGMENT is.
Status require_directory(const std::string& path);

// "1 node", "3 nodes": `n` and the noun, plural unless n is 1 (`plural`
// when the noun does not just take an s).
std::string count_of(uint64_t n, const std::string& noun, const std::string& plural = "");

// Expands the SEGMENT... arguments: a directory stands for its segments.
Result<std::vector<std::string>> expand_segments(const std::vector<std::string>& args);

}  // namespace walcut::cli
