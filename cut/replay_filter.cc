#include "cut/replay_filter.h"

#include <algorithm>
#include <cassert>
#include <deque>
#include <functional>
#include <utility>

#include "io/block.h"
#include "io/block_reader.h"
#include "io/file_util.h"
#include "io/record_reader.h"

namespace walcut {

Result<ReplayFilter> load_replay_filter(const NodeIncrements& node, const ReadOptions& io, FilterRead read) {
  if (node.increments.empty()) return Status::invalid_argument("increment 0 has no replay filter");
  const IncrementMeta& m = node.increments.back();
  ReplayFilter f;
  f.snapshot = node.base.snapshot_pointer;
  f.all_until = node.increments.size() > 1 ? node.increments[node.increments.size() - 2].finish : f.snapshot;
  f.start = m.start;
  f.finish = m.finish;
  if (!f.ordered()) {  // decide() relies on it
    return Status::corruption(m.node_id + " increment " + std::to_string(m.index) + ": START " + f.start.to_string() +
                              " and FINISH " + f.finish.to_string() + " are not after " + f.all_until.to_string() +
                              " and in order");
  }
  // The pointers of the cuts the filter trusts must be records of their
  // kind where the metadata says: increment N-1's FINISH, N's START and
  // N's FINISH, of their cuts (a pointer moved to a later record would
  // leave out, or let in, with exit 0, what lies between). The replay
  // checks the full snapshot's CLUSTER_SNAPSHOT record (replay/pipeline.cc):
  // its segment is the first one the replay reads, where a damaged block
  // is the replay's to report, beside the other nodes' replays. The sets
  // are in N's FINISH record. A segment holding one of them is read once;
  // every block is read and its CRC checked, but only those spanning one
  // of the pointers, and in N's last segment those from the FINISH's on,
  // are parsed: the replay parses the others, and stops at the FINISH.
  // One read at a time: the replay reads these segments again, and a
  // reader's buffers are fresh memory. With kCutRecordBlocks (a node no
  // replay reads) and the blocks recorded, each record's block is read
  // alone instead.
  struct Wanted {
    const char* name;
    WalPointer at;
    RecordType type;
    uint64_t cut_id;
    uint64_t block;  // the file offset of its block, when the metadata records it (else 0)
    uint64_t recorded_by;  // the increment whose metadata has `at` and `block`
    bool found = false;
  };
  std::vector<Wanted> wanted;
  if (node.increments.size() > 1) {
    const IncrementMeta& before = node.increments[node.increments.size() - 2];
    wanted.push_back({"INC_SNAPSHOT_FINISH", f.all_until, RecordType::kIncSnapshotFinish, before.cut_id,
                      before.finish_block, before.index});
  }
  wanted.push_back({"INC_SNAPSHOT_START", f.start, RecordType::kIncSnapshotStart, m.cut_id, m.start_block, m.index});
  wanted.push_back(
      {"INC_SNAPSHOT_FINISH", f.finish, RecordType::kIncSnapshotFinish, m.cut_id, m.finish_block, m.index});
  const uint64_t first_segment = node.increments.front().first_segment;
  auto path_of = [&](WalPointer p) -> const std::string* {
    if (p.segment < first_segment || p.segment - first_segment >= node.segment_paths.size()) return nullptr;
    return &node.segment_paths[p.segment - first_segment];
  };
  for (const Wanted& w : wanted) {
    if (path_of(w.at) == nullptr) {
      return Status::corruption(m.node_id + " increment " + std::to_string(m.index) + ": the " + w.name + " record's " +
                                w.at.to_string() + " is not in the segments of increments 1.." +
                                std::to_string(m.index) + " (" + std::to_string(first_segment) + ".." +
                                std::to_string(m.last_segment) + ")");
    }
  }
  // An increment is whole segments: its cut's FINISH ends its last one,
  // followed by nothing but SEGMENT_END (a failed cut's FINISH, also in the
  // WAL, is not).
  const std::string& last = node.segment_paths.back();
  if (path_of(f.finish) != &last) {
    return Status::corruption(m.node_id + " increment " + std::to_string(m.index) + ": its FINISH " +
                              f.finish.to_string() + " is not in its last segment " + last);
  }
  auto check = [&](Wanted& w, const Block& b, const RecordView& r) -> Status {
    Result<RecordPayload> p = decode_payload(r.type, r.payload);
    if (!p.ok()) return p.status();
    w.found = true;
    const uint64_t cut_id = w.type == RecordType::kIncSnapshotStart
                                ? std::get<IncSnapshotStartRecord>(p.value()).cut_id
                                : std::get<IncSnapshotFinishRecord>(p.value()).cut_id;
    if (cut_id != w.cut_id) {
      return Status::corruption(std::string("the ") + (w.type == RecordType::kIncSnapshotStart ? "START" : "FINISH") +
                                " record at " + w.at.to_string() + " is of cut " + std::to_string(cut_id) +
                                ", the metadata says " + std::to_string(w.cut_id));
    }
    if (&w == &wanted.back()) {  // N's FINISH: the sets, and where the replay stops
      const auto& fin = std::get<IncSnapshotFinishRecord>(p.value());
      f.finish_block_end = b.file_offset + kBlockHeaderBytes + b.stored.size();
      f.included = fin.included;
      f.excluded = fin.excluded;
    }
    return {};
  };
  // Nothing but SEGMENT_END follows N's FINISH: an increment ends with
  // its cut's FINISH (a failed cut's, left in the WAL, is followed by the
  // next cut's records).
  bool segment_ended = false;
  auto after_finish = [&](const RecordView& r) -> Status {
    if (r.pointer > f.finish && r.type != RecordType::kSegmentEnd) {
      return Status::corruption("a " + std::string(record_type_name(r.type)) + " record at " + r.pointer.to_string() +
                                " follows the FINISH record at " + f.finish.to_string() +
                                ": an increment ends with its cut's FINISH");
    }
    segment_ended |= r.pointer > f.finish;
    return {};
  };
  const bool by_blocks = read == FilterRead::kCutRecordBlocks &&
                         std::all_of(wanted.begin(), wanted.end(), [](const Wanted& w) { return w.block != 0; });
  // Every record found, the sets sorted.
  auto sorted = [&](ReplayFilter&& out) -> Result<ReplayFilter> {
    for (const Wanted& w : wanted) {
      if (!w.found) {
        return Status::corruption(*path_of(w.at) + ": no " + w.name + " record at " + w.at.to_string());
      }
    }
    std::sort(out.included.begin(), out.included.end());
    std::sort(out.excluded.begin(), out.excluded.end());
    assert(out.ordered());
    return std::move(out);
  };
  if (by_blocks) {  // each record's block alone, where the metadata says it is
    // Each segment opened once: its header, the records' blocks and the
    // block after the FINISH's are one file's, whatever is renamed over
    // its path meanwhile.
    std::deque<std::pair<const std::string*, OpenedFile>> opened;
    auto file_of = [&](const std::string& path) -> Result<const OpenedFile*> {
      for (const auto& [p, file] : opened) {
        if (p == &path) return &file;
      }
      Result<OpenedFile> file = OpenedFile::open(path, /*follow=*/false);
      if (!file.ok()) return file.status();
      return &opened.emplace_back(&path, std::move(file).value()).second;
    };
    Bytes scratch;
    // The records of the block at `offset` of `path`, each to `fn`.
    auto records_at = [&](const std::string& path, uint64_t offset,
                          const std::function<Status(const Block&, const RecordView&)>& fn) -> Status {
      Result<const OpenedFile*> file = file_of(path);
      if (!file.ok()) return file.status();
      Result<Block> b = read_block_at(*file.value(), offset, node.base.cluster_id, node.base.node_index);
      if (!b.ok()) return b.status();
      Result<ByteSpan> raw = block_raw_payload(b->header, b->stored, scratch);
      Status s = raw.ok() ? for_each_record(b->header, raw.value(), [&](const RecordView& r) { return fn(*b, r); })
                          : raw.status();
      return s.ok() ? s : s.with_context(path + " at offset " + std::to_string(offset));
    };
    for (Wanted& w : wanted) {
      const std::string& path = *path_of(w.at);
      const std::string at = path + " at offset " + std::to_string(w.block);
      Status s = records_at(path, w.block, [&](const Block& b, const RecordView& r) -> Status {
        if (!b.holds(w.at)) return Status::corruption("the block does not hold " + w.at.to_string());
        return r.pointer == w.at && r.type == w.type ? check(w, b, r) : after_finish(r);
      });
      if (s.ok() && !w.found) {
        s = Status::corruption(at + ": no " + std::string(w.name) + " record at " + w.at.to_string());
      }
      if (!s.ok()) {
        return Status(s.code(), s.message() + " (the block increment " + std::to_string(w.recorded_by) +
                                    "'s metadata records for its " + w.name + ")");
      }
    }
    // The block after the FINISH's, unless that held SEGMENT_END: the end
    // of the data (zeros), or SEGMENT_END's.
    Result<const OpenedFile*> last = file_of(node.segment_paths.back());
    if (!last.ok()) return last.status();
    Result<Bytes> next = last.value()->read(f.finish_block_end, kBlockHeaderBytes);
    if (!next.ok()) return next.status();
    if (!segment_ended && std::any_of(next->begin(), next->end(), [](std::byte x) { return x != std::byte{0}; })) {
      WALCUT_RETURN_IF_ERROR(records_at(node.segment_paths.back(), f.finish_block_end,
                                        [&](const Block&, const RecordView& r) { return after_finish(r); }));
    }
    return sorted(std::move(f));
  }
  std::vector<const std::string*> segments;  // to read, in WAL order
  for (const Wanted& w : wanted) {
    if (std::find(segments.begin(), segments.end(), path_of(w.at)) == segments.end()) segments.push_back(path_of(w.at));
  }
  for (const std::string* path : segments) {
    BlockReaderOptions ro;
    ro.io = io;
    ro.io.queue_depth = 1;
    ro.mode = TailMode::kStrict;
    ro.cluster_id = node.base.cluster_id;  // a segment of another cluster or node is refused, as by the replay
    ro.node_index = node.base.node_index;
    Result<std::unique_ptr<BlockReader>> reader = BlockReader::open({*path}, ro);
    if (!reader.ok()) return reader.status();
    auto parse = [&](const Block& b) {
      if (path == &last && WalPointer{b.header.first.segment, b.header.end_offset()} > f.finish) return true;
      return std::any_of(wanted.begin(), wanted.end(), [&](const Wanted& w) { return b.holds(w.at); });
    };
    WALCUT_RETURN_IF_ERROR(for_each_record_of(**reader, parse, [&](const Block& b, const RecordView& r) -> Status {
      for (Wanted& w : wanted) {
        if (!w.found && r.pointer == w.at && r.type == w.type) return check(w, b, r);
      }
      return after_finish(r);
    }));
  }
  return sorted(std::move(f));
}

Result<ReplayFilter> load_replay_filter(const std::string& snapshot_dir, uint64_t n, uint16_t node_index,
                                        const ReadOptions& io) {
  Result<std::vector<SnapshotMeta>> bases = read_snapshot_metas(snapshot_dir);
  if (!bases.ok()) return bases.status();
  const SnapshotMeta* base = find_node_meta(bases.value(), node_index);
  if (!base) {
    return Status::not_found(snapshot_dir + ": no full snapshot metadata for node " + std::to_string(node_index));
  }
  Result<NodeIncrements> inc = read_node_increments(snapshot_dir, *base, n);
  if (!inc.ok()) return inc.status();
  return load_replay_filter(inc.value(), io);
}

}  // namespace walcut
