// An example of restoring into your own store: replays the last increment
// of a snapshot, node by node, into a ReplaySink that keeps a hash map.
//   walcut_restore_example SNAPSHOT_DIR
#include <walcut/cut/increment.h>
#include <walcut/replay/pipeline.h>

#include <cstdio>
#include <mutex>
#include <string>
#include <unordered_map>

namespace {

// Your store: here a map per node from "group/partition/key" to value.
class MapSink final : public walcut::ReplaySink {
 public:
  walcut::Status apply(const walcut::ReplayEntry& e) override {
    const walcut::DataEntry& d = *e.entry;
    std::string key = std::to_string(d.group_id) + "/" + std::to_string(d.partition) + "/" + walcut::to_string(d.key);
    std::lock_guard<std::mutex> lock(mu_);  // calls for different partitions may run at once
    if (d.op == walcut::EntryOp::kDelete) {
      map_.erase(key);
    } else {
      map_[key] = walcut::to_string(d.value);
    }
    ++applied_;
    return {};
  }
  size_t size() const { return map_.size(); }
  uint64_t applied() const { return applied_; }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::string> map_;
  uint64_t applied_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: walcut_restore_example SNAPSHOT_DIR\n");
    return 2;
  }
  const std::string snapshot = argv[1];
  walcut::Result<uint64_t> increments = walcut::increment_count(snapshot);
  walcut::Result<std::vector<walcut::SnapshotMeta>> nodes = walcut::read_snapshot_metas(snapshot);
  if (!increments.ok() || !nodes.ok() || increments.value() == 0) {
    std::fprintf(stderr, "%s: not a snapshot with increments\n", snapshot.c_str());
    return 3;
  }
  walcut::ReplayOptions options;  // threads, I/O engine, progress, cancellation
  for (const walcut::SnapshotMeta& node : nodes.value()) {
    MapSink sink;
    walcut::ReplayReport report;
    walcut::Status s = walcut::replay_node(snapshot, increments.value(), node.node_index, sink, options, report);
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.to_string().c_str());
      return 3;
    }
    std::printf("%s: %llu entries applied from increments 1..%llu, %zu keys changed since the full snapshot\n",
                node.node_id.c_str(), static_cast<unsigned long long>(sink.applied()),
                static_cast<unsigned long long>(increments.value()), sink.size());
    if (sink.applied() == 0) return 1;
  }
  return 0;
}
