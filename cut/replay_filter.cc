#include "cut/replay_filter.h"

#include <cassert>
#include <functional>

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
  // The sets are in the FINISH record, in the increment's last segment;
  // the START record is read too, where the metadata says it is, since the
  // filter trusts its pointer as much as the FINISH's. Every block is read
  // and its CRC checked, but only the START's block and those from the
  // FINISH's on are parsed: the replay parses the others, and stops at the
  // FINISH. One read at a time: the replay reads these segments again,
  // and a reader's buffers are fresh memory.
  auto scan = [&](const std::string& path, const std::function<bool(const Block&)>& parse,
                  const std::function<Status(const Block&, const RecordView&)>& fn) -> Status {
    BlockReaderOptions ro;
    ro.io = io;
    ro.io.queue_depth = 1;
    ro.mode = TailMode::kStrict;
    Result<std::unique_ptr<BlockReader>> reader = BlockReader::open({path}, ro);
    if (!reader.ok()) return reader.status();
    return for_each_record_of(**reader, parse, fn);
  };
  auto spans_start = [&](const Block& b) {
    return b.header.first.segment == f.start.segment && b.header.first.offset <= f.start.offset &&
           f.start.offset < b.header.end_offset();
  };
  auto from_finish = [&](const Block& b) {
    return WalPointer{b.header.first.segment, b.header.end_offset()} > f.finish;
  };
  auto cut_of = [&](const char* what, WalPointer at, uint64_t cut_id) {
    return cut_id == m.cut_id
               ? Status{}
               : Status::corruption(std::string("the ") + what + " record at " + at.to_string() + " is of cut " +
                                    std::to_string(cut_id) + ", the metadata says " + std::to_string(m.cut_id));
  };
  bool start_found = false, found = false;
  auto at_start = [&](const RecordView& r) -> Status {
    if (start_found || r.pointer != f.start || r.type != RecordType::kIncSnapshotStart) return {};
    Result<RecordPayload> p = decode_payload(r.type, r.payload);
    if (!p.ok()) return p.status();
    start_found = true;
    return cut_of("START", f.start, std::get<IncSnapshotStartRecord>(p.value()).cut_id);
  };
  if (f.start.segment < m.first_segment || f.start.segment > m.last_segment ||
      f.start.segment - node.increments.front().first_segment >= node.segment_paths.size()) {
    return Status::corruption(m.node_id + " increment " + std::to_string(m.index) + ": START " + f.start.to_string() +
                              " is not in its segments " + std::to_string(m.first_segment) + ".." +
                              std::to_string(m.last_segment));
  }
  const std::string& start_path = node.segment_paths[f.start.segment - node.increments.front().first_segment];
  const std::string& last = node.segment_paths.back();
  if (start_path != last) {
    WALCUT_RETURN_IF_ERROR(
        scan(start_path, spans_start, [&](const Block&, const RecordView& r) { return at_start(r); }));
  }
  WALCUT_RETURN_IF_ERROR(scan(
      last, [&](const Block& b) { return spans_start(b) || from_finish(b); },
      [&](const Block& b, const RecordView& r) -> Status {
        WALCUT_RETURN_IF_ERROR(at_start(r));
        if (found || r.pointer != f.finish || r.type != RecordType::kIncSnapshotFinish) return {};
        f.finish_block_end = b.file_offset + kBlockHeaderBytes + b.stored.size();
        Result<RecordPayload> p = decode_payload(r.type, r.payload);
        if (!p.ok()) return p.status();
        const auto& fin = std::get<IncSnapshotFinishRecord>(p.value());
        WALCUT_RETURN_IF_ERROR(cut_of("FINISH", f.finish, fin.cut_id));
        f.included = fin.included;
        f.excluded = fin.excluded;
        found = true;
        return {};
      }));
  if (!start_found) return Status::corruption(start_path + ": no INC_SNAPSHOT_START record at " + f.start.to_string());
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
