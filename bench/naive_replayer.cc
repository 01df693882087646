#include "bench/naive_replayer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <vector>

#include "cut/increment.h"
#include "engine/snapshot.h"
#include "io/block.h"
#include "io/records.h"
#include "io/wal_format.h"
#include "replay/restore.h"

namespace walcut::bench {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr size_t kPieceBytes = 1 << 20;

using PartitionKey = std::tuple<uint16_t, uint32_t, uint16_t>;  // node, group, partition
using Maps = std::map<PartitionKey, std::unordered_map<std::string, std::string>>;

// One segment file read front to back in 1 MiB preads; `window()` is the
// bytes read and not yet consumed.
class PieceFile {
 public:
  ~PieceFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  Status open(const std::string& path) {
    path_ = path;
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return Status::from_errno("open " + path, errno);
    return {};
  }
  // Makes at least `want` unconsumed bytes available; false at end of file.
  Result<bool> fill(size_t want, NaiveReplayResult& r) {
    while (buf_.size() - begin_ < want) {
      if (begin_ > 0) {  // keep the unconsumed tail only
        std::memmove(buf_.data(), buf_.data() + begin_, buf_.size() - begin_);
        buf_.resize(buf_.size() - begin_);
        begin_ = 0;
      }
      const size_t had = buf_.size();
      buf_.resize(had + kPieceBytes);
      auto t = Clock::now();
      ssize_t got = ::pread(fd_, buf_.data() + had, kPieceBytes, static_cast<off_t>(offset_));
      r.read_s += since(t);
      if (got < 0 && errno == EINTR) {
        buf_.resize(had);
        continue;
      }
      if (got < 0) return Status::from_errno("pread " + path_, errno);
      buf_.resize(had + static_cast<size_t>(got));
      offset_ += static_cast<uint64_t>(got);
      r.file_bytes_read += static_cast<uint64_t>(got);
      if (got == 0) return false;
    }
    return true;
  }
  const std::byte* window() const { return buf_.data() + begin_; }
  void consume(size_t n) { begin_ += n; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t offset_ = 0;
  Bytes buf_;
  size_t begin_ = 0;
};

struct NodeState {
  uint16_t node_index = 0;
  ReplayFilter filter;
  bool finished = false;  // reached the FINISH record
};

// Reads one segment's blocks until its zeros, SEGMENT_END or FINISH.
Status replay_segment(const std::string& path, NodeState& node, Maps& maps, Bytes& scratch,
                      std::vector<std::pair<WalPointer, DataEntry>>& entries, NaiveReplayResult& r) {
  PieceFile f;
  WALCUT_RETURN_IF_ERROR(f.open(path));
  Result<bool> more = f.fill(kSegmentHeaderBytes, r);
  if (!more.ok()) return more.status();
  if (!more.value()) return Status::corruption(path + ": shorter than a segment header");
  Result<SegmentHeader> sh = SegmentHeader::decode(f.window(), path);
  if (!sh.ok()) return sh.status();
  f.consume(kSegmentHeaderBytes);
  ++r.segments;
  for (;;) {
    more = f.fill(kBlockHeaderBytes, r);
    if (!more.ok()) return more.status();
    BlockHeader h;
    if (!more.value() || !BlockHeader::parse(f.window(), h)) return {};  // the zeros after the last block
    more = f.fill(kBlockHeaderBytes + h.stored_bytes, r);
    if (!more.ok()) return more.status();
    if (!more.value()) return Status::corruption(path + ": a block runs past the end of the file");
    auto t = Clock::now();
    ByteSpan stored(f.window() + kBlockHeaderBytes, h.stored_bytes);
    if (block_crc(f.window(), stored) != h.crc) return Status::corruption(path + ": block CRC mismatch");
    r.crc_s += since(t);
    t = Clock::now();
    Result<ByteSpan> raw = block_raw_payload(h, stored, scratch);
    if (!raw.ok()) return Status::corruption(path + ": " + raw.status().message());
    r.decode_s += since(t);
    t = Clock::now();
    bool segment_end = false;
    entries.clear();
    Status s = for_each_record(h, raw.value(), [&](const RecordView& rec) -> Status {
      if (node.finished) return {};
      ++r.records;
      if (rec.pointer >= node.filter.finish) {
        node.finished = true;
        return {};
      }
      if (rec.type == RecordType::kSegmentEnd) segment_end = true;
      if (rec.type != RecordType::kData) return {};
      return for_each_data_entry(rec.payload, [&](const DataEntry& e) { entries.emplace_back(rec.pointer, e); });
    });
    if (!s.ok()) return Status::corruption(path + ": " + s.message());
    r.parse_s += since(t);
    ++r.blocks;
    r.block_bytes += kBlockHeaderBytes + h.stored_bytes;
    r.raw_payload_bytes += h.raw_bytes;
    t = Clock::now();
    for (const auto& [pointer, e] : entries) {
      ReplayFilter::Verdict v = node.filter.decide(pointer, e.near_xid);
      if (v != ReplayFilter::Verdict::kApply) {
        if (pointer >= node.filter.snapshot) ++r.entries_filtered;
        continue;
      }
      auto& map = maps[PartitionKey{node.node_index, e.group_id, e.partition}];
      if (e.op == EntryOp::kDelete) {
        map.erase(to_string(e.key));
      } else {
        map.insert_or_assign(to_string(e.key), to_string(e.value));
      }
      ++r.entries_applied;
    }
    r.apply_s += since(t);
    f.consume(kBlockHeaderBytes + h.stored_bytes);
    if (node.finished || segment_end) return {};
  }
}

}  // namespace

Result<NaiveReplayResult> naive_replay(const std::string& snapshot_dir, uint64_t n) {
  NaiveReplayResult r;
  auto start = Clock::now();
  Result<std::vector<SnapshotMeta>> bases = read_snapshot_metas(snapshot_dir);
  if (!bases.ok()) return bases.status();
  std::vector<std::vector<IncrementMeta>> inc;
  for (uint64_t k = 1; k <= n; ++k) {
    Result<std::vector<IncrementMeta>> m = read_increment_metas(snapshot_dir, k);
    if (!m.ok()) return m.status();
    inc.push_back(std::move(m).value());
  }
  Maps maps;
  Bytes scratch;
  std::vector<std::pair<WalPointer, DataEntry>> entries;
  for (const SnapshotMeta& b : bases.value()) {
    NodeState node;
    node.node_index = b.node_index;
    auto t = Clock::now();
    ReadOptions io;
    io.engine = IoEngine::kPread;
    Result<ReplayFilter> filter = load_replay_filter(snapshot_dir, n, b.node_index, io);
    if (!filter.ok()) return filter.status();
    r.filter_s += since(t);
    node.filter = std::move(filter).value();
    for (uint64_t k = 1; k <= n && !node.finished; ++k) {
      for (const IncrementMeta& m : inc[k - 1]) {
        if (m.node_index != b.node_index) continue;
        for (const ManifestEntry& f : m.files) {
          if (node.finished) break;
          WALCUT_RETURN_IF_ERROR(
              replay_segment(increment_dir(snapshot_dir, k) + "/" + f.path, node, maps, scratch, entries, r));
        }
      }
    }
    if (!node.finished) return Status::corruption(snapshot_dir + ": node " + b.node_id + "'s WAL ends before FINISH");
    ++r.nodes;
  }
  r.partitions = maps.size();
  for (const auto& [key, map] : maps) r.keys += map.size();
  r.seconds = since(start);
  return r;
}

}  // namespace walcut::bench
