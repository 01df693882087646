#include "replay/restore.h"

#include <fcntl.h>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <boost/unordered/unordered_flat_map.hpp>

#include "engine/affinity.h"
#include "engine/node.h"
#include "engine/node_meta.h"
#include "engine/partition_file.h"
#include "io/block.h"
#include "io/block_reader.h"
#include "io/crc32c.h"
#include "io/fault.h"
#include "io/file_util.h"
#include "io/names.h"
#include "io/stream_copy.h"
#include "replay/huge_arena.h"
#include "replay/parallel.h"
#include "replay/restore_table.h"

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
Result<std::vector<std::string>> segment_paths(const std::string& snapshot_dir,
                                               const std::vector<std::vector<IncrementMeta>>& inc, uint16_t node) {
  std::vector<std::string> paths;
  for (size_t k = 0; k < inc.size(); ++k) {
    const IncrementMeta* m = meta_of(inc[k], node);
    if (!m) {
      return Status::not_found(increment_dir(snapshot_dir, k + 1) + ": no metadata for node " + std::to_string(node));
    }
    for (const ManifestEntry& f : m->files) {
      Result<std::string> path = path_under(snapshot_dir, increment_rel_dir(k + 1) + "/" + f.path);
      if (!path.ok()) return path.status();
      paths.push_back(std::move(path).value());
    }
  }
  return paths;
}

using Table = RestoreTable;

uint64_t table_key(uint32_t group, uint16_t partition) { return uint64_t{group} << 16 | partition; }
// Whether the restore asked for cache group `name` (--groups; none: all).
bool group_wanted(const RestoreOptions& o, const std::string& name) {
  return o.groups.empty() || std::count(o.groups.begin(), o.groups.end(), name) > 0;
}
std::string_view key_of(const DataEntry& d) { return {reinterpret_cast<const char*>(d.key.data()), d.key.size()}; }

// The built-in sink: one node's partition copies, created up front so
// stripes touch disjoint entries of an unchanging index.
class TableSink final : public ReplaySink {
 public:
  explicit TableSink(std::map<PartitionId, Table>& tables) {
    for (auto& [pid, table] : tables) index_.emplace(table_key(pid.first, pid.second), &table);
  }
  Status apply(const ReplayEntry& e) override { return apply_many(e.node_index, std::span(e.entry, 1)); }

  // Looks up entry i + kAhead's table and starts loading its slot while
  // entry i is applied: the slot's cache miss overlaps the work before it.
  Status apply_many(uint16_t, std::span<const DataEntry> entries) override {
    constexpr size_t kAhead = 8;
    struct Ready {
      Table* table;
      uint64_t hash;
    };
    Ready ready[kAhead];
    auto prepare = [&](size_t i) -> Status {
      const DataEntry& d = entries[i];
      auto it = index_.find(table_key(d.group_id, d.partition));
      if (it == index_.end()) {
        return Status::corruption("an entry of group " + std::to_string(d.group_id) + " partition " +
                                  std::to_string(d.partition) + " in the WAL of a node that holds no copy of it");
      }
      uint64_t h = Table::hash(key_of(d));
      it->second->prefetch(h);
      ready[i % kAhead] = Ready{it->second, h};
      return {};
    };
    for (size_t i = 0; i < std::min(kAhead, entries.size()); ++i) WALCUT_RETURN_IF_ERROR(prepare(i));
    for (size_t i = 0; i < entries.size(); ++i) {
      const Ready r = ready[i % kAhead];
      if (i + kAhead < entries.size()) WALCUT_RETURN_IF_ERROR(prepare(i + kAhead));
      const DataEntry& d = entries[i];
      if (d.op == EntryOp::kDelete) {
        r.table->remove(key_of(d), d.write_version, r.hash);
      } else {
        r.table->put(key_of(d), d.value, d.write_version, r.hash);
      }
    }
    return {};
  }

 private:
  boost::unordered_flat_map<uint64_t, Table*> index_;
};

// Progress of the nodes replayed at once: counted from every pipeline,
// reported from whichever reading thread finds the callback free.
class ProgressHub {
 public:
  ProgressHub(const std::function<void(const RestoreProgress&)>& fn, uint64_t bytes_total)
      : fn_(fn), bytes_total_(bytes_total) {}
  void read(uint64_t bytes) {
    uint64_t total = bytes_read_ += bytes;
    if (!fn_) return;
    std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
    if (lock.owns_lock()) fn_(RestoreProgress{total, bytes_total_, applied_});
  }
  void applied(uint64_t entries) { applied_ += entries; }

 private:
  const std::function<void(const RestoreProgress&)>& fn_;
  const uint64_t bytes_total_;
  std::atomic<uint64_t> bytes_read_{0}, applied_{0};
  std::mutex mu_;
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
  if (m->files.empty()) {
    return Status::corruption(increment_dir(snapshot_dir, n) + ": node " + m->node_id + " lists no segment");
  }
  Result<std::string> last_path = path_under(snapshot_dir, increment_rel_dir(n) + "/" + m->files.back().path);
  if (!last_path.ok()) return last_path.status();
  const std::string& last = last_path.value();
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

namespace {

// A token of the pipeline: up to 1 MiB of consecutive blocks and the
// entries they yield, sorted into stripes. Reused once applied.
struct Batch {
  std::vector<Block> blocks;
  std::vector<Bytes> raw;                         // decompressed payloads, one per LZ4 block
  std::vector<std::vector<DataEntry>> stripes;    // to apply, in WAL order within each
  uint64_t records = 0, filtered = 0, applied = 0;

  void reset(size_t stripe_count) {
    blocks.clear();
    stripes.resize(stripe_count);
    for (auto& s : stripes) s.clear();
    records = filtered = applied = 0;
  }
};

// Batches handed out and taken back, so a long replay allocates only its
// first few.
class BatchPool {
 public:
  Batch* take() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) {
      all_.push_back(std::make_unique<Batch>());
      return all_.back().get();
    }
    Batch* b = free_.back();
    free_.pop_back();
    return b;
  }
  void give(Batch* b) {
    b->blocks.clear();  // lets the reader reuse their buffers
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(b);
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<Batch>> all_;
  std::vector<Batch*> free_;
};

// The metadata of increments 1..n, in order.
Result<std::vector<std::vector<IncrementMeta>>> read_increments(const std::string& snapshot_dir, uint64_t n) {
  std::vector<std::vector<IncrementMeta>> inc;
  for (uint64_t k = 1; k <= n; ++k) {
    Result<std::vector<IncrementMeta>> m = read_increment_metas(snapshot_dir, k);
    if (!m.ok()) return m.status();
    inc.push_back(std::move(m).value());
  }
  return inc;
}

// Bytes of node `node`'s segments in `inc`: the progress total.
uint64_t segment_bytes(const std::vector<std::vector<IncrementMeta>>& inc, uint16_t node) {
  uint64_t total = 0;
  for (const auto& metas : inc) {
    if (const IncrementMeta* m = meta_of(metas, node)) {
      for (const ManifestEntry& f : m->files) total += f.bytes;
    }
  }
  return total;
}

// Replays node `node_index`'s increments 1..inc.size() (inc not empty).
Status replay_one(const std::string& snapshot_dir, const std::vector<std::vector<IncrementMeta>>& inc,
                  uint16_t node_index, ReplaySink& sink, const RestoreOptions& options, RestoreReport& report,
                  ProgressHub& progress) {
  const uint64_t n = inc.size();
  Result<ReplayFilter> filter = load_replay_filter(snapshot_dir, n, node_index, options.io);
  if (!filter.ok()) return filter.status();
  std::set<uint32_t> groups;
  bool all_groups = true;
  for (const CacheGroup& g : inc.front().front().groups) {
    if (group_wanted(options, g.name)) {
      groups.insert(g.id);
    } else {
      all_groups = false;
    }
  }
  const bool wants_records = sink.wants_records();
  Result<std::vector<std::string>> paths = segment_paths(snapshot_dir, inc, node_index);
  if (!paths.ok()) return paths.status();
  BlockReaderOptions ro;
  ro.io = options.io;
  ro.mode = TailMode::kStrict;
  const IncrementMeta* first = meta_of(inc.front(), node_index);
  if (!first) return Status::not_found(increment_dir(snapshot_dir, 1) + ": no metadata for node " + std::to_string(node_index));
  ro.cluster_id = first->cluster_id;  // a segment of another cluster or node is refused
  ro.node_index = node_index;
  Result<std::unique_ptr<BlockReader>> opened = BlockReader::open(paths.value(), ro);
  if (!opened.ok()) return opened.status();
  BlockReader& reader = **opened;
  report.io_engine = reader.engine_name();

  constexpr uint64_t kBatchBytes = 1 << 20;
  const unsigned threads = thread_count(options.threads);
  const size_t stripe_count = threads;
  const size_t tokens = 2 * threads + 2;
  FirstError error;
  std::atomic<bool> reached_finish{false};
  uint64_t applied = 0, filtered = 0, records = 0;
  BatchPool pool;

  auto read_batch = [&](tbb::flow_control& fc) -> Batch* {
    if (error.failed() || reached_finish || (options.cancel && *options.cancel)) {
      if (options.cancel && *options.cancel) error.set(Status::cancelled("restore cancelled"));
      fc.stop();
      return nullptr;
    }
    Batch* batch = pool.take();
    batch->reset(stripe_count);
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
      pool.give(batch);
      fc.stop();
      return nullptr;
    }
    progress.read(bytes);
    return batch;
  };

  // Decode runs on every thread: LZ4, parse, the cut filter, the stripe.
  auto decode_batch = [&](Batch* batch) -> Batch* {
    if (batch->raw.size() < batch->blocks.size()) batch->raw.resize(batch->blocks.size());
    for (size_t i = 0; i < batch->blocks.size() && !error.failed(); ++i) {
      const Block& b = batch->blocks[i];
      Result<ByteSpan> raw = block_raw_payload(b.header, b.stored, batch->raw[i]);
      if (!raw.ok()) {
        error.set(Status::corruption(reader.path(b.file) + " at offset " + std::to_string(b.file_offset) + ": " +
                                     raw.status().message()));
        break;
      }
      Status s = for_each_record(b.header, raw.value(), [&](const RecordView& r) -> Status {
        ++batch->records;
        if (r.pointer >= filter->finish) {
          reached_finish = true;
          return {};
        }
        if (r.type != RecordType::kData) {
          if (!wants_records || r.pointer < filter->snapshot) return {};
          bool kept = true;
          if (r.type == RecordType::kTx) {
            Result<RecordPayload> tx = decode_payload(r.type, r.payload);
            if (!tx.ok()) return tx.status();
            kept = filter->decide(r.pointer, std::get<TxRecord>(tx.value()).near_xid) == ReplayFilter::Verdict::kApply;
          }
          return sink.on_record(node_index, r, kept);
        }
        return for_each_data_entry(r.payload, [&](const DataEntry& e) {
          ReplayFilter::Verdict v = filter->decide(r.pointer, e.near_xid);
          if (v == ReplayFilter::Verdict::kApply && (all_groups || groups.count(e.group_id))) {
            batch->stripes[(e.group_id * 65537u + e.partition) % stripe_count].push_back(e);
            ++batch->applied;
          } else if (r.pointer >= filter->snapshot) {  // older ones are in the snapshot's files
            ++batch->filtered;
          }
        });
      });
      if (!s.ok()) {
        error.set(Status::corruption(reader.path(b.file) + " at offset " + std::to_string(b.file_offset) + ": " +
                                     s.message()));
      }
    }
    return batch;
  };

  // Apply, batch after batch in WAL order; within a batch each stripe on
  // its own thread, so a (group, partition) has one owner at a time.
  auto apply_batch = [&](Batch* batch) {
    if (!error.failed()) {
      records += batch->records;
      filtered += batch->filtered;
      auto run_stripe = [&](size_t stripe) {
        if (batch->stripes[stripe].empty()) return;
        Status s = sink.apply_many(node_index, batch->stripes[stripe]);
        stream_fence();  // the next batch's owner of these partitions may be another thread
        if (!s.ok()) error.set(s);
      };
      size_t busy = std::count_if(batch->stripes.begin(), batch->stripes.end(), [](const auto& v) { return !v.empty(); });
      if (busy > 1) {
        tbb::parallel_for(size_t{0}, stripe_count, run_stripe);
      } else {
        for (size_t i = 0; i < stripe_count; ++i) run_stripe(i);
      }
      applied += batch->applied;
      progress.applied(batch->applied);
    }
    pool.give(batch);
  };

  tbb::parallel_pipeline(tokens, tbb::make_filter<void, Batch*>(tbb::filter_mode::serial_in_order, read_batch) &
                                     tbb::make_filter<Batch*, Batch*>(tbb::filter_mode::parallel, decode_batch) &
                                     tbb::make_filter<Batch*, void>(tbb::filter_mode::serial_in_order, apply_batch));

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

}  // namespace

Status replay_node(const std::string& snapshot_dir, uint64_t n, uint16_t node_index, ReplaySink& sink,
                   const RestoreOptions& options, RestoreReport& report) {
  if (n == 0) return Status::invalid_argument("replay_node: increment 0 has no WAL to replay");
  Result<std::vector<std::vector<IncrementMeta>>> inc = read_increments(snapshot_dir, n);
  if (!inc.ok()) return inc.status();
  ProgressHub progress(options.progress, segment_bytes(inc.value(), node_index));
  std::unique_ptr<tbb::global_control> limit;
  if (options.threads > 0) {
    limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, options.threads);
  }
  return replay_one(snapshot_dir, inc.value(), node_index, sink, options, report, progress);
}

namespace {

// One node's part of a restore: its copies, loaded, replayed, repaired,
// then sorted once as they are written.
struct NodePart {
  SnapshotMeta meta;
  std::unique_ptr<HugeArena> arena = std::make_unique<HugeArena>();  // the tables' memory; outlives them
  std::map<PartitionId, Table> tables;
};

// The identity part of RESTORED: which restore this is.
std::string restore_stamp(const RestoreOptions& o) {
  std::error_code ec;
  std::string snap = fs::weakly_canonical(o.snapshot_dir, ec).string();
  std::string s = "snapshot=" + snap + "\nincrement=" + std::to_string(o.increment) + "\nnode=" + o.node.value_or("*") +
                  "\ngroups=";
  for (const std::string& g : o.groups) s += g + ",";
  return s + "\n";
}

// One entry of a restored tree as RESTORED records it, one line each:
// "dir <path>" or "file <bytes> <crc32c, 8 hex digits> <path>".
struct TreeEntry {
  std::string path;  // relative to the tree's root
  bool dir = false;
  uint64_t bytes = 0;
  uint32_t crc32c = 0;
  std::string line() const {
    if (dir) return "dir " + path + "\n";
    char crc[16];
    std::snprintf(crc, sizeof crc, "%08x", crc32c);
    return "file " + std::to_string(bytes) + " " + crc + " " + path + "\n";
  }
};

// The entries under `root` (RESTORED left out), sorted by path, with the
// files' sizes. Anything but a directory or a regular file is Corruption.
Result<std::vector<TreeEntry>> tree_of(const std::string& root) {
  Result<std::vector<DirEntry>> listed = list_directory(root, /*recursive=*/true);
  if (!listed.ok()) return listed.status();
  std::vector<TreeEntry> tree;
  for (const DirEntry& e : listed.value()) {
    if (e.path == "RESTORED") continue;
    if (e.kind == DirEntry::Kind::kOther) {
      return Status::corruption(root + "/" + e.path + ": neither a directory nor a regular file");
    }
    if (e.path.find('\n') != std::string::npos) {
      return Status::corruption(root + "/" + e.path + ": a name with a line break");
    }
    tree.push_back(TreeEntry{e.path, e.kind == DirEntry::Kind::kDirectory, e.bytes, 0});
  }
  return tree;
}

// Fills in the files' checksums: one read of every file, in parallel.
Status add_checksums(const std::string& root, std::vector<TreeEntry>& tree) {
  FirstError error;
  tbb::parallel_for(size_t{0}, tree.size(), [&](size_t i) {
    if (tree[i].dir) return;
    Result<Bytes> bytes = read_file_bytes(root + "/" + tree[i].path);
    if (!bytes.ok()) return error.set(bytes.status());
    tree[i].crc32c = crc32c(bytes.value());
  });
  return error.get();
}

// RESTORED's lines after the identity, back into entries.
Result<std::vector<TreeEntry>> parse_tree(const std::string& text, const std::string& what) {
  std::vector<TreeEntry> tree;
  size_t at = 0;
  for (size_t line = 1; at < text.size(); ++line) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) return Status::corruption(what + ": the last line is cut short");
    std::string l = text.substr(at, end - at);
    at = end + 1;
    TreeEntry e;
    char crc[9] = {};
    unsigned long long bytes = 0;
    int used = 0;
    if (l.rfind("dir ", 0) == 0 && l.size() > 4) {
      e.dir = true;
      e.path = l.substr(4);
    } else if (std::sscanf(l.c_str(), "file %llu %8[0-9a-f] %n", &bytes, crc, &used) == 2 && used > 0 &&
               static_cast<size_t>(used) < l.size() && std::strlen(crc) == 8) {
      e.bytes = bytes;
      e.crc32c = static_cast<uint32_t>(std::stoul(crc, nullptr, 16));
      e.path = l.substr(static_cast<size_t>(used));
    } else {
      return Status::corruption(what + ": entry " + std::to_string(line) + " is malformed: " + l);
    }
    tree.push_back(std::move(e));
  }
  return tree;
}

// Whether `dest` holds the tree its RESTORED records: the same directories
// and files, and each file its recorded size and checksum. Returns the
// first difference, in path order, as Corruption.
Status verify_published(const std::string& dest, const std::string& recorded_text) {
  Result<std::vector<TreeEntry>> recorded = parse_tree(recorded_text, dest + "/RESTORED");
  if (!recorded.ok()) return recorded.status();
  auto differs = [&](const std::string& path, const std::string& what) {
    return Status::corruption("--dest " + dest + ": holds a restore that was changed since it was published: " + dest +
                              "/" + path + ": " + what + "; move it aside and restore again");
  };
  Result<std::vector<TreeEntry>> found = tree_of(dest);
  if (!found.ok()) return found.status();
  const std::vector<TreeEntry>& want = recorded.value();
  std::vector<TreeEntry>& have = found.value();
  for (size_t i = 0; i < std::max(want.size(), have.size()); ++i) {
    if (i == have.size() || (i < want.size() && want[i].path < have[i].path)) {
      return differs(want[i].path, "missing (RESTORED records it)");
    }
    if (i == want.size() || have[i].path < want[i].path) return differs(have[i].path, "not written by the restore");
    if (want[i].dir != have[i].dir) return differs(have[i].path, want[i].dir ? "not a directory" : "not a file");
    if (want[i].bytes != have[i].bytes) {
      return differs(have[i].path,
                     std::to_string(have[i].bytes) + " bytes, the restore wrote " + std::to_string(want[i].bytes));
    }
  }
  WALCUT_RETURN_IF_ERROR(add_checksums(dest, have));
  for (size_t i = 0; i < want.size(); ++i) {
    if (have[i].crc32c != want[i].crc32c) return differs(want[i].path, "checksum differs from what the restore wrote");
  }
  return {};
}

Status verify_inputs(const RestoreOptions& o, std::vector<SnapshotMeta>& bases,
                     std::vector<std::vector<IncrementMeta>>& inc) {
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
        Result<std::string> under = path_under(o.snapshot_dir, increment_rel_dir(k) + "/" + f.path);
        if (!under.ok()) return under.status();
        const std::string& path = under.value();
        std::error_code ec;
        if (f.path != "wal/" + b.node_id + "/" + segment_file_name(s) || !fs::exists(path, ec)) {
          return Status::corruption(path + ": segment " + std::to_string(s) + " of node " + b.node_id + " is missing");
        }
        uint64_t bytes = fs::file_size(path, ec);
        if (ec) return Status::io_error("stat " + path + ": " + ec.message());
        if (bytes != f.bytes) {
          return Status::corruption(path + ": " + std::to_string(bytes) + " bytes, the manifest says " +
                                    std::to_string(f.bytes));
        }
      }
    }
    inc.push_back(std::move(metas_k).value());
  }
  return {};
}

// Reads every file of the full snapshot's manifests once: checks its size
// and checksum against the manifest, and parses the partition files of
// the copies to restore into their tables.
Status load_parts(const RestoreOptions& o, std::vector<NodePart>& parts, RestoreReport& report) {
  struct Job {
    std::string path;
    const ManifestEntry* listed = nullptr;  // null: owned, but not in the manifest
    Table* table = nullptr;                 // null: only checked
  };
  std::vector<Job> jobs;
  for (NodePart& part : parts) {
    Affinity aff(part.meta.groups, part.meta.baseline);
    std::map<std::string, Table*> wanted;  // by path in the snapshot
    for (const CacheGroup& g : part.meta.groups) {
      if (!group_wanted(o, g.name)) continue;
      for (uint16_t p = 0; p < g.partitions; ++p) {
        if (!aff.owns(g.id, p, part.meta.node_index)) continue;
        Table* t = &part.tables.try_emplace(PartitionId{g.id, p}, part.arena.get()).first->second;
        wanted.emplace("db/" + part.meta.node_id + "/" + g.name + "/" + partition_file_name(p), t);
      }
    }
    for (const ManifestEntry& f : part.meta.files) {
      auto it = wanted.find(f.path);
      Result<std::string> path = path_under(o.snapshot_dir, f.path);
      if (!path.ok()) return path.status();
      jobs.push_back({std::move(path).value(), &f, it == wanted.end() ? nullptr : it->second});
      if (it != wanted.end()) wanted.erase(it);
    }
    for (const auto& [rel, t] : wanted) {
      Result<std::string> path = path_under(o.snapshot_dir, rel);
      if (!path.ok()) return path.status();
      jobs.push_back({std::move(path).value(), nullptr, t});
    }
  }
  FirstError error;
  tbb::parallel_for(size_t{0}, jobs.size(), [&](size_t i) {
    const Job& job = jobs[i];
    Result<Bytes> bytes = read_file_bytes(job.path);
    if (!bytes.ok()) {
      return error.set(Status::corruption(job.path + (job.listed ? ": listed in the manifest but cannot be read"
                                                                 : ": the partition file cannot be read")));
    }
    if (job.listed && bytes->size() != job.listed->bytes) {
      return error.set(Status::corruption(job.path + ": " + std::to_string(bytes->size()) +
                                          " bytes, the manifest says " + std::to_string(job.listed->bytes)));
    }
    if (job.listed && crc32c(bytes.value()) != job.listed->crc32c) {
      return error.set(Status::corruption(job.path + ": checksum differs from the manifest"));
    }
    if (!job.table) return;
    Table& t = *job.table;
    Result<PartitionFileScan> f =
        scan_partition_file(job.path, bytes.value(), [&](std::string_view key, ByteSpan value, const Version& v) {
          t.put(key, value, v);
        });
    if (!f.ok()) return error.set(f.status());
  });
  report.partition_files = jobs.size();
  return error.get();
}

// ATOMIC groups carry no cut guarantee: make every copy agree with the
// newest version among the partition's copies, a delete's (a tombstone)
// included. Returns entries changed.
uint64_t repair_atomic(std::vector<NodePart>& parts) {
  if (parts.empty()) return 0;
  const SnapshotMeta& m = parts.front().meta;
  Affinity aff(m.groups, m.baseline);
  std::map<uint16_t, NodePart*> by_index;
  for (NodePart& p : parts) by_index[p.meta.node_index] = &p;
  std::vector<std::vector<Table*>> partitions;  // the copies of each ATOMIC partition
  for (const CacheGroup& g : m.groups) {
    if (g.mode != CacheMode::kAtomic) continue;
    for (uint16_t p = 0; p < g.partitions; ++p) {
      std::vector<Table*> copies;
      for (uint16_t n : aff.owners(g.id, p)) {
        auto it = by_index.find(n);
        if (it == by_index.end()) continue;
        auto t = it->second->tables.find(PartitionId{g.id, p});
        if (t != it->second->tables.end()) copies.push_back(&t->second);
      }
      if (copies.size() >= 2) partitions.push_back(std::move(copies));
    }
  }
  std::atomic<uint64_t> changed{0};
  tbb::parallel_for(size_t{0}, partitions.size(), [&](size_t i) {
    const std::vector<Table*>& copies = partitions[i];
    // The newest value or tombstone of every key any copy holds, pointing into that copy.
    boost::unordered_flat_map<std::string_view, Table::Value> newest;
    for (const Table* c : copies) {
      c->for_each_with_tombstones([&](std::string_view k, const Table::Value& v) {
        auto [it, fresh] = newest.emplace(k, v);
        if (!fresh && it->second.version < v.version) it->second = v;
      });
    }
    // Changes copied out first: setting one may move another's bytes.
    struct Change {
      std::string key;
      std::optional<Bytes> value;  // none: delete
      Version version;
    };
    uint64_t n = 0;
    for (Table* c : copies) {
      std::vector<Change> changes;
      for (const auto& [k, v] : newest) {
        std::optional<Table::Value> have = c->find(k);
        if (v.deleted ? !have : have && *have == v) continue;
        changes.push_back({std::string(k), v.deleted ? std::nullopt : std::optional(Bytes(v.bytes.begin(), v.bytes.end())),
                           v.version});
      }
      for (const Change& ch : changes) {
        if (ch.value) {
          c->put(ch.key, *ch.value, ch.version);
        } else {
          c->remove(ch.key, ch.version);
        }
      }
      n += changes.size();
    }
    stream_fence();  // the checkpoint reads these on other threads
    changed += n;
  });
  return changed;
}

Status write_node(const NodePart& part, const std::string& staging, uint64_t& files_written) {
  Result<std::string> node_dir = path_under(staging, part.meta.node_id);
  if (!node_dir.ok()) return node_dir.status();
  const std::string& dir = node_dir.value();
  std::error_code ec;
  fs::create_directories(dir + "/wal", ec);
  for (const CacheGroup& g : part.meta.groups) {
    Result<std::string> group_dir = path_under(dir, "db/" + g.name);
    if (!group_dir.ok()) return group_dir.status();
    fs::create_directories(group_dir.value(), ec);
  }
  if (ec) return Status::io_error("create " + dir + ": " + ec.message());
  std::vector<const std::pair<const PartitionId, Table>*> items;
  for (const auto& item : part.tables) items.push_back(&item);
  FirstError error;
  tbb::parallel_for(size_t{0}, items.size(), [&](size_t i) {
    // Plain references, not a structured binding: clang 14 lets no lambda capture one, and `source` captures `table`.
    const PartitionId& pid = items[i]->first;
    const Table& table = items[i]->second;
    const CacheGroup& g = *std::find_if(part.meta.groups.begin(), part.meta.groups.end(),
                                        [&](const CacheGroup& c) { return c.id == pid.first; });
    auto source = [&](const PartitionEntryFn& fn) {  // sorted() leaves the tombstones out
      for (const auto& [key, value] : table.sorted()) fn(key, value.bytes, value.version);
    };
    error.set(write_partition_file_from(dir + "/db/" + g.name + "/" + partition_file_name(pid.second),
                                        {pid.first, pid.second, part.meta.node_index}, source,
                                        /*sync=*/false));  // syncfs() once, before RESTORED
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

// `p` without trailing slashes ("/" stays).
std::string without_trailing_slash(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string parent_of(const std::string& path) {
  std::string parent = fs::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

// Staging directories of earlier runs into `dest` that died or were
// killed: "<dest>.staging-*", and "<dest>.staging" of older versions.
// Only while holding dest's lock, so none of them is a live run's.
Status remove_stale_stagings(const std::string& dest) {
  const std::string parent = parent_of(dest);
  const std::string prefix = fs::path(dest).filename().string() + ".staging";
  Result<std::vector<DirEntry>> entries = list_directory(parent);
  if (!entries.ok()) return entries.status();
  for (const DirEntry& e : entries.value()) {
    if (e.kind != DirEntry::Kind::kDirectory || !e.path.starts_with(prefix)) continue;
    if (e.path != prefix && !e.path.starts_with(prefix + "-")) continue;
    std::error_code ec;
    fs::remove_all(parent + "/" + e.path, ec);
    if (ec) return Status::io_error("remove the stale staging " + parent + "/" + e.path + ": " + ec.message());
  }
  return {};
}

// A new staging directory of this run: "<dest>.staging-<pid>-<random>".
Result<std::string> make_staging(const std::string& dest) {
  std::string name = dest + ".staging-" + std::to_string(::getpid()) + "-XXXXXX";
  if (::mkdtemp(name.data()) == nullptr) return Status::from_errno("create a staging directory " + name, errno);
  return name;
}

// Removes a staging directory when the run fails before publishing it.
struct RemoveUnlessPublished {
  std::string dir;
  bool published = false;
  ~RemoveUnlessPublished() {
    std::error_code ec;
    if (!published) fs::remove_all(dir, ec);
  }
};

}  // namespace

Result<RestoreReport> restore_snapshot(const RestoreOptions& options) {
  RestoreReport report;
  if (options.dest.empty()) return Status::invalid_argument("--dest is required");
  const std::string dest = without_trailing_slash(options.dest);
  if (path_is_within(dest, options.snapshot_dir)) {
    return Status::invalid_argument("--dest " + dest + ": inside the snapshot " + options.snapshot_dir +
                                    "; restore to a directory outside it");
  }
  // One restore into dest at a time: the lock file beside it, kept after the run.
  const std::string parent = parent_of(dest);
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) return Status::io_error("create " + parent + ": " + ec.message());
  Result<FileLock> lock = FileLock::lock_file(dest + ".lock", dest, options.wait);
  if (!lock.ok()) return lock.status();
  WALCUT_RETURN_IF_ERROR(remove_stale_stagings(dest));
  std::unique_ptr<tbb::global_control> limit;  // from here: verifying an existing dest reads in parallel too
  if (options.threads > 0) {
    limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, options.threads);
  }
  const std::string stamp = restore_stamp(options);
  if (fs::exists(fs::symlink_status(dest, ec))) {
    Result<Bytes> marker = read_file_bytes(dest + "/RESTORED");
    if (!marker.ok() || !to_string(marker.value()).starts_with(stamp)) {
      return Status::invalid_argument("--dest " + dest + ": exists and is not this restore; choose a new directory");
    }
    WALCUT_RETURN_IF_ERROR(verify_published(dest, to_string(marker.value()).substr(stamp.size())));
    report.already_restored = true;  // a rerun after the rename: nothing to do
    return report;
  }
  auto t = Clock::now();
  std::vector<SnapshotMeta> bases;
  std::vector<std::vector<IncrementMeta>> inc;
  WALCUT_RETURN_IF_ERROR(verify_inputs(options, bases, inc));
  report.verify_s = since(t);

  t = Clock::now();
  std::vector<NodePart> parts(bases.size());
  for (size_t i = 0; i < bases.size(); ++i) parts[i].meta = bases[i];
  WALCUT_RETURN_IF_ERROR(load_parts(options, parts, report));
  report.nodes = parts.size();
  report.load_s = since(t);

  // Nodes replay side by side, at most one per thread at a time: each has
  // its own reader, pipeline and partitions.
  t = Clock::now();
  if (options.increment > 0) {
    uint64_t bytes_total = 0;
    for (const NodePart& part : parts) bytes_total += segment_bytes(inc, part.meta.node_index);
    ProgressHub progress(options.progress, bytes_total);
    std::vector<RestoreReport> reports(parts.size());
    std::vector<Status> results(parts.size());
    for_each_in_waves(parts.size(), thread_count(options.threads), [&](size_t i) {
      TableSink sink(parts[i].tables);
      results[i] = replay_one(options.snapshot_dir, inc, parts[i].meta.node_index, sink, options, reports[i], progress);
    });
    for (size_t i = 0; i < parts.size(); ++i) {
      WALCUT_RETURN_IF_ERROR(results[i]);
      report.segments += reports[i].segments;
      report.blocks += reports[i].blocks;
      report.bytes_read += reports[i].bytes_read;
      report.records += reports[i].records;
      report.entries_applied += reports[i].entries_applied;
      report.entries_filtered += reports[i].entries_filtered;
      report.io_engine = reports[i].io_engine;
    }
  }
  report.replay_s = since(t);

  t = Clock::now();
  if (!options.node) report.atomic_repaired = repair_atomic(parts);
  report.repair_s = since(t);

  // Checkpoint into a staging directory of this run beside dest, then publish it whole.
  t = Clock::now();
  Result<std::string> made = make_staging(dest);
  if (!made.ok()) return made.status();
  const std::string staging = made.value();
  RemoveUnlessPublished cleanup{staging};  // a failed run leaves no staging behind
  uint64_t files_written = 0;
  for (const NodePart& part : parts) WALCUT_RETURN_IF_ERROR(write_node(part, staging, files_written));
  // RESTORED records what is in the staging tree; reading it back runs while its writeback does.
  Result<std::vector<TreeEntry>> tree = tree_of(staging);
  if (!tree.ok()) return tree.status();
  WALCUT_RETURN_IF_ERROR(add_checksums(staging, tree.value()));
  std::string restored = stamp;
  for (const TreeEntry& e : tree.value()) restored += e.line();
  WALCUT_RETURN_IF_ERROR(sync_filesystem(staging));  // every partition file, before RESTORED says it is whole
  WALCUT_RETURN_IF_ERROR(write_file_synced(staging + "/RESTORED", as_bytes(restored)));
  WALCUT_RETURN_IF_ERROR(sync_tree(staging));
  report.checkpoint_s = since(t);

  t = Clock::now();
  fault::point("restore.staged");
  if (::rename(staging.c_str(), dest.c_str()) != 0) {
    return Status::from_errno("rename " + staging + " to " + dest, errno);
  }
  cleanup.published = true;
  fault::point("restore.renamed");
  WALCUT_RETURN_IF_ERROR(sync_dir(parent));
  report.publish_s = since(t);
  return report;
}

}  // namespace walcut
