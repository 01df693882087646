// A list of segment files read through BlockReader, as replay and
// `walcut wal dump` read them.
//
// Input: one control byte, then the files, separated by kNextFile.
// Control bits: 0 strict (snapshot) mode, else torn-tail mode;
//   1 I/O engine auto (io_uring where the kernel allows it), else pread;
//   2 pad each file with zeros up to its header's segment_bytes (at most
//     kPadMaxBytes), as the writer preallocates;
//   3 fix checksums: the segment header's CRC, the link to the previous
//     file's last block, and each block's CRC, walking blocks from offset
//     64 while their headers line up, so mutations reach what comes after
//     the CRC checks;
//   4-5 chunk size: 4, 8, 64 or 1024 KiB.
// A file is named after the segment index in its header when that name is
// free, so the name-versus-header check runs too.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "io/block.h"
#include "io/block_reader.h"
#include "io/crc32c.h"
#include "tests/fuzz/fuzz_util.h"

using namespace walcut;

namespace {

constexpr char kNextFile[] = "WCFZNEXT";
constexpr size_t kNextFileBytes = sizeof kNextFile - 1;
constexpr size_t kMaxFiles = 4;
constexpr uint64_t kPadMaxBytes = 256 << 10;

std::vector<Bytes> split_files(ByteSpan in) {
  std::vector<Bytes> files(1);
  for (size_t i = 0; i < in.size(); ++i) {
    if (files.size() < kMaxFiles && in.size() - i >= kNextFileBytes &&
        std::memcmp(in.data() + i, kNextFile, kNextFileBytes) == 0) {
      files.emplace_back();
      i += kNextFileBytes - 1;
      continue;
    }
    files.back().push_back(in[i]);
  }
  return files;
}

// Rewrites the CRCs of `f` (see the control bits); returns its last block's CRC.
uint32_t fix_checksums(Bytes& f, uint32_t prev_last_crc, bool has_prev) {
  if (f.size() < kSegmentHeaderBytes) return 0;
  if (has_prev) store_u32(f.data() + 48, prev_last_crc);
  store_u32(f.data() + 60, crc32c({f.data(), 60}));
  uint32_t last = 0;
  for (size_t off = kSegmentHeaderBytes; f.size() - off >= kBlockHeaderBytes;) {
    std::byte* h = f.data() + off;
    if (load_u32(h) != kBlockMagic) break;
    uint32_t stored = load_u32(h + 8);
    if (f.size() - off - kBlockHeaderBytes < stored) break;
    last = block_crc(h, {h + kBlockHeaderBytes, stored});
    store_u32(h + 4, last);
    off += kBlockHeaderBytes + stored;
  }
  return last;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t control = data[0];
  std::vector<Bytes> files = split_files(fuzz::input_bytes(data, size).subspan(1));
  std::vector<std::string> paths;
  std::set<std::string> names;
  uint32_t last_crc = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    Bytes& f = files[i];
    if (control & 8) last_crc = fix_checksums(f, last_crc, i > 0);
    if ((control & 4) && f.size() >= 40) {
      uint64_t segment_bytes = load_u64(f.data() + 32);
      if (segment_bytes > f.size() && segment_bytes <= kPadMaxBytes) f.resize(segment_bytes);
    }
    std::string name = f.size() >= 32 ? segment_file_name(load_u64(f.data() + 24)) : "";
    if (name.empty() || !names.insert(name).second) name = "file-" + std::to_string(i);
    paths.push_back(fuzz::write_scratch(name, f));
  }
  BlockReaderOptions o;
  o.mode = (control & 1) ? TailMode::kStrict : TailMode::kTolerateTornTail;
  o.io.engine = (control & 2) ? IoEngine::kAuto : IoEngine::kPread;
  static constexpr uint32_t kChunkKib[] = {4, 8, 64, 1024};
  o.io.chunk_bytes = kChunkKib[(control >> 4) & 3] << 10;
  o.io.queue_depth = 2;
  o.io.notice = [](const std::string&) {};
  Result<std::unique_ptr<BlockReader>> reader = BlockReader::open(paths, o);
  if (!reader.ok()) return 0;
  Block b;
  Bytes scratch;
  for (;;) {
    Result<bool> more = (*reader)->next(b);
    if (!more.ok() || !more.value()) break;
    Result<ByteSpan> raw = block_raw_payload(b.header, b.stored, scratch);
    if (!raw.ok()) continue;
    (void)for_each_record(b.header, raw.value(), [](const RecordView&) { return Status{}; });
  }
  (void)(*reader)->end();
  for (const std::string& p : paths) std::remove(p.c_str());
  return 0;
}
