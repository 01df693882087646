// An example of restoring into your own store: each node's full snapshot
// through load_snapshot_node(), then its increments 1..N through
// replay_node(), into a std::map; compared with the library's own restore
// of the same increment into DEST (exit 1 on any difference).
//   walcut_restore_example SNAPSHOT_DIR DEST
#include <walcut/cut/increment.h>
#include <walcut/engine/affinity.h>
#include <walcut/engine/partition_file.h>
#include <walcut/replay/restore.h>
#include <walcut/replay/snapshot_load.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

namespace {

// Your store: (group name, partition, key) -> value.
using Store = std::map<std::tuple<std::string, uint16_t, std::string>, std::string>;

// Replayed changes into the store, named by group.
class StoreSink final : public walcut::ReplaySink {
 public:
  explicit StoreSink(Store& store) : store_(store) {}
  walcut::Status begin(uint16_t, const std::vector<walcut::CacheGroup>& groups) override {
    for (const walcut::CacheGroup& g : groups) names_[g.id] = g.name;  // before any entry
    return {};
  }
  walcut::Status apply(const walcut::ReplayEntry& e) override {
    const walcut::DataEntry& d = *e.entry;
    auto name = names_.find(d.group_id);
    if (name == names_.end()) {
      return walcut::Status::corruption("an entry of group id " + std::to_string(d.group_id) + ", not in begin()");
    }
    auto key = std::make_tuple(name->second, d.partition, walcut::to_string(d.key));
    std::lock_guard<std::mutex> lock(mu_);  // calls for different partitions may run at once
    if (d.op == walcut::EntryOp::kDelete) {
      store_.erase(key);
    } else {
      store_[key] = walcut::to_string(d.value);
    }
    return {};
  }

 private:
  Store& store_;
  std::map<uint32_t, std::string> names_;
  std::mutex mu_;
};

// Node `m`'s copies of `groups` as the library's restore wrote them under `dest`.
walcut::Result<Store> restored_copies(const std::string& dest, const walcut::SnapshotMeta& m,
                                      const std::vector<std::string>& groups) {
  Store out;
  walcut::Affinity aff(m.groups, m.baseline);
  for (const walcut::CacheGroup& g : m.groups) {
    if (std::count(groups.begin(), groups.end(), g.name) == 0) continue;
    for (uint16_t p = 0; p < g.partitions; ++p) {
      if (!aff.owns(g.id, p, m.node_index)) continue;
      auto f = walcut::read_partition_file(walcut::partition_path(dest + "/" + m.node_id + "/db", g, p));
      if (!f.ok()) return f.status();
      for (const auto& [key, v] : f->entries) out[{g.name, p, key}] = v.value;
    }
  }
  return out;
}

int fail(const walcut::Status& s) {
  std::fprintf(stderr, "%s\n", s.to_string().c_str());
  return 3;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: walcut_restore_example SNAPSHOT_DIR DEST\n");
    return 2;
  }
  const std::string snapshot = argv[1], dest = argv[2];
  walcut::Result<uint64_t> increments = walcut::increment_count(snapshot);
  if (!increments.ok()) return fail(increments.status());
  walcut::Result<std::vector<walcut::SnapshotMeta>> nodes = walcut::read_snapshot_metas(snapshot);
  if (!nodes.ok()) return fail(nodes.status());
  walcut::RestoreOptions reference;  // the library's own restore, to compare with
  reference.snapshot_dir = snapshot;
  reference.increment = increments.value();
  reference.dest = dest;
  walcut::Result<walcut::RestoreReport> restored = walcut::restore_snapshot(reference);
  if (!restored.ok()) return fail(restored.status());

  for (const walcut::SnapshotMeta& node : nodes.value()) {
    walcut::ReplayOptions options;  // groups, threads, I/O engine, progress, cancellation
    for (const walcut::CacheGroup& g : node.groups) {  // ATOMIC groups need the restore's repair across copies
      if (g.mode == walcut::CacheMode::kTransactional) options.groups.push_back(g.name);
    }
    Store store;
    walcut::SnapshotLoadReport loaded;
    walcut::Status s = walcut::load_snapshot_node(
        snapshot, node.node_index,
        [&](const walcut::SnapshotEntry& e) {
          store[{e.group->name, e.partition, std::string(e.key)}] = walcut::to_string(e.value);
          return walcut::Status{};
        },
        options, loaded);
    if (!s.ok()) return fail(s);
    StoreSink sink(store);
    walcut::ReplayReport replayed;
    s = walcut::replay_node(snapshot, increments.value(), node.node_index, sink, options, replayed);
    if (!s.ok()) return fail(s);
    walcut::Result<Store> want = restored_copies(dest, node, options.groups);
    if (!want.ok()) return fail(want.status());
    using ull = unsigned long long;
    std::printf("%s: %llu entries from %llu snapshot files, %llu replayed from increments 1..%llu: %zu keys\n",
                node.node_id.c_str(), static_cast<ull>(loaded.entries), static_cast<ull>(loaded.files),
                static_cast<ull>(replayed.entries_applied), static_cast<ull>(increments.value()), store.size());
    if (store != want.value() || store.empty()) {
      std::fprintf(stderr, "%s: %zu keys, the library's restore in %s has %zu\n", node.node_id.c_str(),
                   store.size(), dest.c_str(), want->size());
      return 1;
    }
  }
  return 0;
}
