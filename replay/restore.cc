#include "replay/restore.h"

#include <fcntl.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "engine/affinity.h"
#include "engine/node.h"
#include "engine/node_meta.h"
#include "engine/partition_file.h"
#include "io/block.h"
#include "io/block_reader.h"
#include "io/crc32c.h"
#include "io/fault.h"
#include "io/file_util.h"

namespace walcut {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The first error of many threads.
class FirstError {
 public:
  void set(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (status_.ok() && !s.ok()) status_ = std::move(s);
  }
  bool failed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return !status_.ok();
  }
  Status get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return status_;
  }

 private:
  mutable std::mutex mu_;
  Status status_;
};


const IncrementMeta* meta_of(const std::vector<IncrementMeta>& metas, uint16_t node) {
  for (const IncrementMeta& m : metas) {
    if (m.node_index == node) return &m;
  }
  return nullptr;
}

// Segment files of node `node` in increments 1..n, in order.
std::vector<std::string> segment_paths(const std::string& snapshot_dir, const std::vector<std::vector<IncrementMeta>>& inc,
                                       uint16_t node) {
  std::vector<std::string> paths;
  for (size_t k = 0; k < inc.size(); ++k) {
    const IncrementMeta* m = meta_of(inc[k], node);
    for (const ManifestEntry& f : m->files) paths.push_back(increment_dir(snapshot_dir, k + 1) + "/" + f.path);
  }
  return paths;
}

// The built-in sink: one node's partition copies, created up front so
// stripes touch disjoint entries of an unchanging map.
class PartitionSink final : public ReplaySink {
 public:
  explicit PartitionSink(std::map<PartitionId, Partition>& parts) : parts_(parts) {}
  Status apply(const ReplayEntry& e) override {
    auto it = parts_.find(PartitionId{e.entry->group_id, e.entry->partition});
    if (it == parts_.end()) {
      return Status::corruption("an entry of group " + std::to_string(e.entry->group_id) + " partition " +
                                std::to_string(e.entry->partition) + " in the WAL of a node that holds no copy of it");
    }
    it->second.apply(*e.entry);
    return {};
  }

 private:
  std::map<PartitionId, Partition>& parts_;
};

}  // namespace

Result<ReplayFilter> load_replay_filter(const std::string& snapshot_dir, uint64_t n, uint16_t node_index,
                                        const ReadOptions& io) {
  Result<std::vector<SnapshotMeta>> base = read_snapshot_metas(snapshot_dir);
  if (!base.ok()) return base.status();
  auto b = std::find_if(base->begin(), base->end(), [&](const SnapshotMeta& m) { return m.node_index == node_index; });
  if (b == base->end()) return Status::not_found(snapshot_dir + ": no full snapshot metadata for node " + std::to_string(node_index));
  Result<std::vector<IncrementMeta>> cur = read_increment_metas(snapshot_dir, n);
  if (!cur.ok()) return cur.status();
  const IncrementMeta* m = meta_of(cur.value(), node_index);
  if (!m) return Status::not_found(increment_dir(snapshot_dir, n) + ": no metadata for node " + std::to_string(node_index));
  ReplayFilter f;
  f.snapshot = b->snapshot_pointer;
  f.all_until = f.snapshot;
  if (n > 1) {
    Result<std::vector<IncrementMeta>> prev = read_increment_metas(snapshot_dir, n - 1);
    if (!prev.ok()) return prev.status();
    const IncrementMeta* p = meta_of(prev.value(), node_index);
    if (!p) return Status::not_found(increment_dir(snapshot_dir, n - 1) + ": no metadata for node " + std::to_string(node_index));
    f.all_until = p->finish;
  }
  f.start = m->start;
  f.finish = m->finish;
  // The sets are in the FINISH record, in the increment's last segment.
  std::string last = increment_dir(snapshot_dir, n) + "/" + m->files.back().path;
  BlockReaderOptions ro;
  ro.io = io;
  ro.mode = TailMode::kStrict;
  Result<std::unique_ptr<BlockReader>> reader = BlockReader::open({last}, ro);
  if (!reader.ok()) return reader.status();
  Block blk;
  Bytes scratch;
  bool found = false;
  while (!found) {
    Result<bool> more = (*reader)->next(blk);
    if (!more.ok()) return more.status();
    if (!more.value()) break;
    Result<ByteSpan> raw = block_raw_payload(blk.header, blk.stored, scratch);
    if (!raw.ok()) return Status::corruption(last + ": " + raw.status().message());
    Status s = for_each_record(blk.header, raw.value(), [&](const RecordView& r) -> Status {
      if (r.pointer != f.finish || r.type != RecordType::kIncSnapshotFinish) return {};
      Result<RecordPayload> p = decode_payload(r.type, r.payload);
      if (!p.ok()) return p.status();
      const auto& fin = std::get<IncSnapshotFinishRecord>(p.value());
      f.included = fin.included;
      f.excluded = fin.excluded;
      found = true;
      return {};
    });
    if (!s.ok()) return Status::corruption(last + ": " + s.message());
  }
  if (!found) return Status::corruption(last + ": no INC_SNAPSHOT_FINISH record at " + f.finish.to_string());
  std::sort(f.included.begin(), f.included.end());
  std::sort(f.excluded.begin(), f.excluded.end());
  return f;
}

Status replay_node(const std::string& snapshot_dir, uint64_t n, uint16_t node_index, ReplaySink& sink,
                   const RestoreOptions& options, RestoreReport& report) {
  std::vector<std::vector<IncrementMeta>> inc;
  for (uint64_t k = 1; k <= n; ++k) {
    Result<std::vector<IncrementMeta>> m = read_increment_metas(snapshot_dir, k);
    if (!m.ok()) return m.status();
    inc.push_back(std::move(m).value());
  }
  Result<ReplayFilter> filter = load_replay_filter(snapshot_dir, n, node_index, options.io);
  if (!filter.ok()) return filter.status();
  std::set<uint32_t> groups;  // empty: all
  for (const CacheGroup& g : inc.front().front().groups) {
    if (options.groups.empty() || std::count(options.groups.begin(), options.groups.end(), g.name)) groups.insert(g.id);
  }
  const bool wants_records = sink.wants_records();
  std::vector<std::string> paths = segment_paths(snapshot_dir, inc, node_index);
  uint64_t bytes_total = 0;
  for (const std::string& p : paths) bytes_total += fs::file_size(p);
  BlockReaderOptions ro;
  ro.io = options.io;
  ro.mode = TailMode::kStrict;
  const IncrementMeta* first = meta_of(inc.front(), node_index);
  if (!first) return Status::not_found(increment_dir(snapshot_dir, 1) + ": no metadata for node " + std::to_string(node_index));
  ro.cluster_id = first->cluster_id;  // a segment of another cluster or node is refused
  ro.node_index = node_index;
  Result<std::unique_ptr<BlockReader>> opened = BlockReader::open(paths, ro);
  if (!opened.ok()) return opened.status();
  BlockReader& reader = **opened;
  report.io_engine = reader.engine_name();

  // A token: up to 1 MiB of consecutive blocks and the entries they yield.
  struct Batch {
    std::vector<Block> blocks;
    std::vector<Bytes> raw;          // decompressed payloads, one per LZ4 block
    std::vector<DataEntry> entries;  // to apply, in WAL order
    uint64_t records = 0, filtered = 0;
  };
  constexpr uint64_t kBatchBytes = 1 << 20;
  const unsigned threads = std::max(1u, static_cast<unsigned>(tbb::this_task_arena::max_concurrency()));
  const size_t tokens = 2 * threads + 2;
  FirstError error;
  std::atomic<bool> reached_finish{false};
  std::atomic<uint64_t> applied{0}, filtered{0}, records{0};
  uint64_t bytes_read = 0;
  RestoreProgress progress{0, bytes_total, 0};

  tbb::parallel_pipeline(
      tokens,
      tbb::make_filter<void, std::shared_ptr<Batch>>(
          tbb::filter_mode::serial_in_order,
          [&](tbb::flow_control& fc) -> std::shared_ptr<Batch> {
            if (error.failed() || reached_finish || (options.cancel && *options.cancel)) {
              if (options.cancel && *options.cancel) error.set(Status::cancelled("restore cancelled"));
              fc.stop();
              return nullptr;
            }
            auto batch = std::make_shared<Batch>();
            uint64_t bytes = 0;
            Block b;
            while (bytes < kBatchBytes) {
              Result<bool> more = reader.next(b);
              if (!more.ok()) {
                error.set(more.status());
                break;
              }
              if (!more.value()) break;
              bytes += kBlockHeaderBytes + b.stored.size();
              batch->blocks.push_back(std::move(b));
            }
            if (batch->blocks.empty()) {
              fc.stop();
              return nullptr;
            }
            bytes_read += bytes;
            progress.bytes_read = bytes_read;
            progress.entries_applied = applied;
            if (options.progress) options.progress(progress);
            return batch;
          }) &
          tbb::make_filter<std::shared_ptr<Batch>, std::shared_ptr<Batch>>(
              tbb::filter_mode::parallel,
              [&](std::shared_ptr<Batch> batch) {
                batch->raw.resize(batch->blocks.size());
                for (size_t i = 0; i < batch->blocks.size() && !error.failed(); ++i) {
                  const Block& b = batch->blocks[i];
                  Result<ByteSpan> raw = block_raw_payload(b.header, b.stored, batch->raw[i]);
                  if (!raw.ok()) {
                    error.set(Status::corruption(reader.path(b.file) + " at offset " + std::to_string(b.file_offset) +
                                                 ": " + raw.status().message()));
                    break;
                  }
                  Status s = for_each_record(b.header, raw.value(), [&](const RecordView& r) -> Status {
                    ++batch->records;
                    if (r.pointer >= filter->finish) {
                      reached_finish = true;
                      return {};
                    }
                    if (r.type != RecordType::kData && wants_records && r.pointer >= filter->snapshot) {
                      bool kept = true;
                      if (r.type == RecordType::kTx) {
                        Result<RecordPayload> tx = decode_payload(r.type, r.payload);
                        if (!tx.ok()) return tx.status();
                        kept = filter->decide(r.pointer, std::get<TxRecord>(tx.value()).near_xid) ==
                               ReplayFilter::Verdict::kApply;
                      }
                      return sink.on_record(node_index, r, kept);
                    }
                    if (r.type != RecordType::kData) return {};
                    return for_each_data_entry(r.payload, [&](const DataEntry& e) {
                      ReplayFilter::Verdict v = filter->decide(r.pointer, e.near_xid);
                      if (v == ReplayFilter::Verdict::kApply && groups.count(e.group_id)) {
                        batch->entries.push_back(e);
                      } else if (r.pointer >= filter->snapshot) {  // older ones are in the snapshot's files
                        ++batch->filtered;
                      }
                    });
                  });
                  if (!s.ok()) {
                    error.set(Status::corruption(reader.path(b.file) + " at offset " + std::to_string(b.file_offset) +
                                                 ": " + s.message()));
                  }
                }
                return batch;
              }) &
          tbb::make_filter<std::shared_ptr<Batch>, void>(
              tbb::filter_mode::serial_in_order, [&](std::shared_ptr<Batch> batch) {
                if (error.failed()) return;
                records += batch->records;
                filtered += batch->filtered;
                // Stripes: each (group, partition) belongs to one, which applies
                // its entries in order; stripes run in parallel.
                const size_t stripes = batch->entries.size() >= 2048 ? threads : 1;
                auto run_stripe = [&](size_t stripe) {
                  for (const DataEntry& e : batch->entries) {
                    if (stripes > 1 && (e.group_id * 65537u + e.partition) % stripes != stripe) continue;
                    Status s = sink.apply(ReplayEntry{node_index, &e});
                    if (!s.ok()) return error.set(s);
                  }
                };
                if (stripes == 1) {
                  run_stripe(0);
                } else {
                  tbb::parallel_for(size_t{0}, stripes, run_stripe);
                }
                applied += batch->entries.size();
              }));

  WALCUT_RETURN_IF_ERROR(error.get());
  if (!reached_finish) {
    return Status::corruption(snapshot_dir + ": the WAL of node " + std::to_string(node_index) +
                              " ends before increment " + std::to_string(n) + "'s FINISH record at " +
                              filter->finish.to_string());
  }
  report.segments += reader.counters().segments;
  report.blocks += reader.counters().blocks;
  report.bytes_read += reader.counters().block_bytes;
  report.records += records;
  report.entries_applied += applied;
  report.entries_filtered += filtered;
  return {};
}

namespace {

// One node's part of a restore.
struct NodePart {
  SnapshotMeta meta;
  std::map<PartitionId, Partition> partitions;
};

std::string restore_stamp(const RestoreOptions& o) {
  std::error_code ec;
  std::string snap = fs::weakly_canonical(o.snapshot_dir, ec).string();
  std::string s = "snapshot=" + snap + "\nincrement=" + std::to_string(o.increment) + "\nnode=" + o.node.value_or("*") +
                  "\ngroups=";
  for (const std::string& g : o.groups) s += g + ",";
  return s + "\n";
}

Status verify_inputs(const RestoreOptions& o, std::vector<SnapshotMeta>& bases,
                     std::vector<std::vector<IncrementMeta>>& inc, RestoreReport& report) {
  Result<std::vector<SnapshotMeta>> metas = read_snapshot_metas(o.snapshot_dir);
  if (!metas.ok()) return metas.status();
  bases = std::move(metas).value();
  if (o.node) {
    std::erase_if(bases, [&](const SnapshotMeta& m) { return m.node_id != *o.node; });
    if (bases.empty()) return Status::invalid_argument("--node " + *o.node + ": no such node in " + o.snapshot_dir);
  }
  for (const std::string& g : o.groups) {
    bool known = std::any_of(bases.front().groups.begin(), bases.front().groups.end(),
                             [&](const CacheGroup& c) { return c.name == g; });
    if (!known) return Status::invalid_argument("--groups: no cache group named " + g + " in " + o.snapshot_dir);
  }
  // Every file of the full snapshot: there, its size, its checksum.
  std::vector<std::pair<std::string, const ManifestEntry*>> files;
  for (const SnapshotMeta& m : bases) {
    for (const ManifestEntry& f : m.files) files.emplace_back(o.snapshot_dir + "/" + f.path, &f);
  }
  FirstError error;
  tbb::parallel_for(size_t{0}, files.size(), [&](size_t i) {
    const auto& [path, entry] = files[i];
    Result<Bytes> bytes = read_file_bytes(path);
    if (!bytes.ok()) return error.set(Status::corruption(path + ": listed in the manifest but cannot be read"));
    if (bytes->size() != entry->bytes) {
      return error.set(Status::corruption(path + ": " + std::to_string(bytes->size()) + " bytes, the manifest says " +
                                          std::to_string(entry->bytes)));
    }
    if (crc32c(bytes.value()) != entry->crc32c) return error.set(Status::corruption(path + ": checksum differs from the manifest"));
  });
  WALCUT_RETURN_IF_ERROR(error.get());
  report.partition_files = files.size();
  // Increments 1..N: present, same groups, segments in an unbroken run.
  Result<uint64_t> count = increment_count(o.snapshot_dir);
  if (!count.ok()) return count.status();
  if (o.increment > count.value()) {
    return Status::invalid_argument("--increment " + std::to_string(o.increment) + ": " + o.snapshot_dir + " has " +
                                    std::to_string(count.value()) + " increments");
  }
  for (uint64_t k = 1; k <= o.increment; ++k) {
    Result<std::vector<IncrementMeta>> metas_k = read_increment_metas(o.snapshot_dir, k);
    if (!metas_k.ok()) return metas_k.status();
    for (const SnapshotMeta& b : bases) {
      const IncrementMeta* m = meta_of(metas_k.value(), b.node_index);
      std::string dir = increment_dir(o.snapshot_dir, k);
      if (!m) return Status::corruption(dir + ": no metadata for node " + b.node_id);
      if (m->groups != b.groups) return Status::corruption(dir + ": the cache groups differ from the full snapshot's");
      uint64_t first = k == 1 ? b.snapshot_pointer.segment : meta_of(inc.back(), b.node_index)->last_segment + 1;
      if (m->first_segment != first || m->last_segment < m->first_segment ||
          m->files.size() != m->last_segment - m->first_segment + 1) {
        return Status::corruption(dir + ": node " + b.node_id + "'s segments " + std::to_string(m->first_segment) + ".." +
                                  std::to_string(m->last_segment) + " do not continue from segment " + std::to_string(first));
      }
      for (uint64_t s = m->first_segment; s <= m->last_segment; ++s) {
        const ManifestEntry& f = m->files[s - m->first_segment];
        std::string path = dir + "/" + f.path;
        std::error_code ec;
        if (f.path != "wal/" + b.node_id + "/" + segment_file_name(s) || !fs::exists(path, ec)) {
          return Status::corruption(path + ": segment " + std::to_string(s) + " of node " + b.node_id + " is missing");
        }
        if (fs::file_size(path, ec) != f.bytes) {
          return Status::corruption(path + ": " + std::to_string(fs::file_size(path, ec)) + " bytes, the manifest says " +
                                    std::to_string(f.bytes));
        }
      }
    }
    inc.push_back(std::move(metas_k).value());
  }
  return {};
}

Status load_node(const RestoreOptions& o, NodePart& part) {
  Affinity aff(part.meta.groups, part.meta.baseline);
  for (const CacheGroup& g : part.meta.groups) {
    if (!o.groups.empty() && !std::count(o.groups.begin(), o.groups.end(), g.name)) continue;
    for (uint16_t p = 0; p < g.partitions; ++p) {
      if (aff.owns(g.id, p, part.meta.node_index)) part.partitions.emplace(PartitionId{g.id, p}, Partition{});
    }
  }
  std::vector<std::pair<std::string, Partition*>> files;
  for (auto& [pid, partition] : part.partitions) {
    const CacheGroup& g = *std::find_if(part.meta.groups.begin(), part.meta.groups.end(),
                                        [&](const CacheGroup& c) { return c.id == pid.first; });
    files.emplace_back(o.snapshot_dir + "/db/" + part.meta.node_id + "/" + g.name + "/" + partition_file_name(pid.second),
                       &partition);
  }
  FirstError error;
  tbb::parallel_for(size_t{0}, files.size(), [&](size_t i) {
    Result<PartitionFile> f = read_partition_file(files[i].first);
    if (!f.ok()) return error.set(f.status());
    *files[i].second = Partition(std::move(f->entries));
  });
  return error.get();
}

// ATOMIC groups carry no cut guarantee: make every copy agree with the
// newest version among the partition's copies. Returns entries changed.
uint64_t repair_atomic(std::vector<NodePart>& parts) {
  if (parts.empty()) return 0;
  const SnapshotMeta& m = parts.front().meta;
  Affinity aff(m.groups, m.baseline);
  std::map<uint16_t, NodePart*> by_index;
  for (NodePart& p : parts) by_index[p.meta.node_index] = &p;
  uint64_t changed = 0;
  for (const CacheGroup& g : m.groups) {
    if (g.mode != CacheMode::kAtomic) continue;
    for (uint16_t p = 0; p < g.partitions; ++p) {
      std::vector<Partition*> copies;
      for (uint16_t n : aff.owners(g.id, p)) {
        auto it = by_index.find(n);
        if (it == by_index.end()) continue;
        auto pit = it->second->partitions.find(PartitionId{g.id, p});
        if (pit != it->second->partitions.end()) copies.push_back(&pit->second);
      }
      if (copies.size() < 2) continue;
      std::map<std::string, StoredValue> newest;
      for (Partition* c : copies) {
        for (const auto& [k, v] : c->entries()) {
          auto [it, fresh] = newest.emplace(k, v);
          if (!fresh && it->second.version < v.version) it->second = v;
        }
      }
      for (Partition* c : copies) {
        for (const auto& [k, v] : newest) {
          const StoredValue* have = c->find(k);
          if (have && *have == v) continue;
          c->put(k, v.value, v.version);
          ++changed;
        }
      }
    }
  }
  return changed;
}

Status write_tree_synced(const std::string& root) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_directory()) WALCUT_RETURN_IF_ERROR(sync_dir(it->path().string()));
  }
  if (ec) return Status::io_error("list " + root + ": " + ec.message());
  return sync_dir(root);
}

Status write_node(const NodePart& part, const std::string& staging, uint64_t& files_written) {
  const std::string dir = staging + "/" + part.meta.node_id;
  std::error_code ec;
  fs::create_directories(dir + "/wal", ec);
  for (const CacheGroup& g : part.meta.groups) fs::create_directories(dir + "/db/" + g.name, ec);
  if (ec) return Status::io_error("create " + dir + ": " + ec.message());
  std::vector<const std::pair<const PartitionId, Partition>*> items;
  for (const auto& item : part.partitions) items.push_back(&item);
  FirstError error;
  tbb::parallel_for(size_t{0}, items.size(), [&](size_t i) {
    const auto& [pid, partition] = *items[i];
    const CacheGroup& g = *std::find_if(part.meta.groups.begin(), part.meta.groups.end(),
                                        [&](const CacheGroup& c) { return c.id == pid.first; });
    error.set(write_partition_file(dir + "/db/" + g.name + "/" + partition_file_name(pid.second),
                                   {pid.first, pid.second, part.meta.node_index}, partition.entries()));
  });
  WALCUT_RETURN_IF_ERROR(error.get());
  files_written += items.size();
  NodeMeta nm;
  nm.cluster_id = part.meta.cluster_id;
  nm.node_index = part.meta.node_index;
  nm.node_id = part.meta.node_id;
  nm.baseline = part.meta.baseline;
  nm.groups = part.meta.groups;
  nm.topology_version = part.meta.topology_version;
  nm.checkpoint_id = 1;  // the restored state is a checkpoint; the WAL starts empty
  return write_node_meta(dir, nm);
}

}  // namespace

Result<RestoreReport> restore_snapshot(const RestoreOptions& options) {
  RestoreReport report;
  const std::string stamp = restore_stamp(options);
  std::error_code ec;
  if (options.dest.empty()) return Status::invalid_argument("--dest is required");
  if (fs::exists(options.dest, ec)) {
    Result<Bytes> marker = read_file_bytes(options.dest + "/RESTORED");
    if (marker.ok() && to_string(marker.value()) == stamp) {
      report.already_restored = true;  // a rerun after the rename: nothing to do
      return report;
    }
    return Status::invalid_argument("--dest " + options.dest + ": exists and is not this restore; choose a new directory");
  }
  std::unique_ptr<tbb::global_control> limit;
  if (options.threads > 0) {
    limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, options.threads);
  }
  auto t = Clock::now();
  std::vector<SnapshotMeta> bases;
  std::vector<std::vector<IncrementMeta>> inc;
  WALCUT_RETURN_IF_ERROR(verify_inputs(options, bases, inc, report));
  report.verify_s = since(t);

  t = Clock::now();
  std::vector<NodePart> parts(bases.size());
  for (size_t i = 0; i < bases.size(); ++i) {
    parts[i].meta = bases[i];
    WALCUT_RETURN_IF_ERROR(load_node(options, parts[i]));
  }
  report.nodes = parts.size();
  report.load_s = since(t);

  t = Clock::now();
  for (NodePart& part : parts) {
    if (options.increment == 0) break;
    PartitionSink sink(part.partitions);
    WALCUT_RETURN_IF_ERROR(replay_node(options.snapshot_dir, options.increment, part.meta.node_index, sink, options, report));
  }
  report.replay_s = since(t);

  t = Clock::now();
  if (!options.node) report.atomic_repaired = repair_atomic(parts);
  report.repair_s = since(t);

  // Checkpoint into a staging directory beside dest, then publish it whole.
  t = Clock::now();
  const std::string staging = options.dest + ".staging";
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  if (ec) return Status::io_error("create " + staging + ": " + ec.message());
  uint64_t files_written = 0;
  for (const NodePart& part : parts) WALCUT_RETURN_IF_ERROR(write_node(part, staging, files_written));
  {
    int fd = ::open((staging + "/RESTORED").c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) return Status::from_errno("create " + staging + "/RESTORED", errno);
    Status s = pwrite_all(fd, as_bytes(stamp), 0, staging + "/RESTORED");
    if (s.ok()) s = sync_file(fd, staging + "/RESTORED");
    ::close(fd);
    WALCUT_RETURN_IF_ERROR(s);
  }
  WALCUT_RETURN_IF_ERROR(write_tree_synced(staging));
  report.checkpoint_s = since(t);

  t = Clock::now();
  fault::point("restore.staged");
  if (::rename(staging.c_str(), options.dest.c_str()) != 0) return Status::from_errno("rename " + staging, errno);
  fault::point("restore.renamed");
  std::string parent = fs::path(options.dest).lexically_normal().parent_path().string();
  WALCUT_RETURN_IF_ERROR(sync_dir(parent.empty() ? "." : parent));
  report.publish_s = since(t);
  return report;
}

}  // namespace walcut
