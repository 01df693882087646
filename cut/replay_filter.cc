#include "cut/replay_filter.h"

#include <cassert>

#include "io/block_reader.h"
#include "io/record_reader.h"

namespace walcut {

Result<ReplayFilter> load_replay_filter(const NodeIncrements& node, const ReadOptions& io) {
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
  // The sets are in the FINISH record, in the increment's last segment.
  // Every block is read and its CRC checked, but only those from the one
  // whose records span the FINISH pointer on are parsed: the replay
  // parses the ones before, and stops at the FINISH. One read at a time:
  // the replay reads the segment again, and this reader's buffers are
  // fresh memory.
  const std::string& last = node.segment_paths.back();
  BlockReaderOptions ro;
  ro.io = io;
  ro.io.queue_depth = 1;
  ro.mode = TailMode::kStrict;
  Result<std::unique_ptr<BlockReader>> reader = BlockReader::open({last}, ro);
  if (!reader.ok()) return reader.status();
  bool found = false;
  auto from_finish = [&](const Block& b) {
    return WalPointer{b.header.first.segment, b.header.end_offset()} > f.finish;
  };
  Status s = for_each_record_of(**reader, from_finish, [&](const Block& b, const RecordView& r) -> Status {
    if (found || r.pointer != f.finish || r.type != RecordType::kIncSnapshotFinish) return {};
    f.finish_block_end = b.file_offset + kBlockHeaderBytes + b.stored.size();
    Result<RecordPayload> p = decode_payload(r.type, r.payload);
    if (!p.ok()) return p.status();
    const auto& fin = std::get<IncSnapshotFinishRecord>(p.value());
    if (fin.cut_id != m.cut_id) {
      return Status::corruption("the FINISH record at " + f.finish.to_string() + " is of cut " +
                                std::to_string(fin.cut_id) + ", the metadata says " + std::to_string(m.cut_id));
    }
    f.included = fin.included;
    f.excluded = fin.excluded;
    found = true;
    return {};
  });
  WALCUT_RETURN_IF_ERROR(s);
  if (!found) return Status::corruption(last + ": no INC_SNAPSHOT_FINISH record at " + f.finish.to_string());
  std::sort(f.included.begin(), f.included.end());
  std::sort(f.excluded.begin(), f.excluded.end());
  assert(f.ordered());
  return f;
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
