// Helpers for tests that write a WAL and read it back.
#pragma once

#include <string>
#include <vector>

#include "io/block_reader.h"
#include "io/wal_writer.h"

namespace walcut::testing {

// A record as read back: copies, so it outlives the reader.
struct ReadRecord {
  RecordType type;
  WalPointer pointer;
  Bytes payload;
  bool operator==(const ReadRecord&) const = default;
};

// A block as read back, for comparing block streams.
struct ReadBlock {
  uint32_t file;
  uint64_t file_offset;
  uint32_t crc;
  WalPointer first;
  bool operator==(const ReadBlock&) const = default;
};

struct ReadResult {
  Status status;
  std::vector<ReadRecord> records;
  std::vector<ReadBlock> blocks;
  LogEnd end;
  std::string engine;
};

// Reads every block and record of `paths`; stops at the first error.
ReadResult read_all(const std::vector<std::string>& paths, const BlockReaderOptions& options = {});

// Reader options that treat any damage as an error.
BlockReaderOptions strict_options();

// Small segments and blocks, so a few records exercise rollover and
// block boundaries; syncs every commit.
WriterOptions small_writer_options(const std::string& dir);

// A payload of `bytes` bytes derived from `seed`.
Bytes test_payload(size_t bytes, uint64_t seed);

Bytes read_file(const std::string& path);
void write_file(const std::string& path, ByteSpan bytes);
// The segment files of a wal/ directory, by index.
std::vector<std::string> segments_of(const std::string& dir);

}  // namespace walcut::testing
