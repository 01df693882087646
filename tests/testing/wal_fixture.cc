#include "tests/testing/wal_fixture.h"

#include <fstream>
#include <stdexcept>

#include "io/block.h"
#include "io/file_util.h"

namespace walcut::testing {

ReadResult read_all(const std::vector<std::string>& paths, const BlockReaderOptions& options) {
  ReadResult out;
  Result<std::unique_ptr<BlockReader>> reader = BlockReader::open(paths, options);
  if (!reader.ok()) {
    out.status = reader.status();
    return out;
  }
  out.engine = (*reader)->engine_name();
  Bytes scratch;
  Block b;
  for (;;) {
    Result<bool> more = (*reader)->next(b);
    if (!more.ok()) {
      out.status = more.status();
      return out;
    }
    if (!more.value()) break;
    out.blocks.push_back(ReadBlock{b.file, b.file_offset, b.header.crc, b.header.first});
    Result<ByteSpan> raw = block_raw_payload(b.header, b.stored, scratch);
    if (!raw.ok()) {
      out.status = raw.status();
      return out;
    }
    Status s = for_each_record(b.header, raw.value(), [&](const RecordView& r) {
      out.records.push_back(ReadRecord{r.type, r.pointer, Bytes(r.payload.begin(), r.payload.end())});
      return Status{};
    });
    if (!s.ok()) {
      out.status = s;
      return out;
    }
  }
  out.end = (*reader)->end();
  return out;
}

BlockReaderOptions strict_options() {
  BlockReaderOptions o;
  o.mode = TailMode::kStrict;
  return o;
}

WriterOptions small_writer_options(const std::string& dir) {
  WriterOptions o;
  o.dir = dir;
  o.cluster_id = 7;
  o.node_index = 3;
  o.segment_bytes = 64 << 10;
  o.block_bytes = 1 << 10;
  o.sync = SyncPolicy::kEveryCommit;
  return o;
}

Bytes test_payload(size_t bytes, uint64_t seed) {
  Bytes b(bytes);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < bytes; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b[i] = std::byte{static_cast<uint8_t>(i % 7 == 0 ? x : 'a' + x % 3)};  // partly compressible
  }
  return b;
}

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("read " + path);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return Bytes(reinterpret_cast<const std::byte*>(s.data()), reinterpret_cast<const std::byte*>(s.data()) + s.size());
}

void write_file(const std::string& path, ByteSpan bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("write " + path);
}

std::vector<std::string> segments_of(const std::string& dir) {
  Result<std::vector<std::string>> s = list_segment_files(dir);
  if (!s.ok()) throw std::runtime_error(s.status().to_string());
  return s.value();
}

}  // namespace walcut::testing
