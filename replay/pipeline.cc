#include "replay/pipeline.h"

#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <cassert>
#include <deque>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <set>

#include "cut/increment_chain.h"
#include "engine/snapshot.h"
#include "io/block.h"
#include "io/block_reader.h"
#include "io/fault.h"
#include "io/records.h"
#include "io/stream_copy.h"
#include "replay/parallel.h"

namespace walcut {

void ReplayReport::add(const ReplayReport& o) {
  segments += o.segments;
  blocks += o.blocks;
  records += o.records;
  entries_applied += o.entries_applied;
  entries_filtered += o.entries_filtered;
  bytes_read += o.bytes_read;
  if (!o.io_engine.empty()) io_engine = o.io_engine;
  workers = std::max(workers, o.workers);
  batches = std::max(batches, o.batches);
}

void ProgressHub::read(uint64_t bytes, const std::string& node) {
  bytes_read_ += bytes;
  if (!fn_) return;
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (lock.owns_lock()) call(node);
}

void ProgressHub::report() {
  if (!fn_) return;
  std::lock_guard<std::mutex> lock(mu_);
  call("");
}

void ProgressHub::call(const std::string& node) {
  fn_(ReplayProgress{phase_, node, bytes_read_, bytes_total_, applied_});
}

uint64_t bytes_to_finish(const NodeIncrements& inc, const ReplayFilter& filter) {
  if (inc.increments.empty()) return 0;
  const uint64_t last_bytes = inc.increments.back().files.back().bytes;
  const uint64_t headers = kSegmentHeaderBytes * (inc.segment_paths.size() - 1);
  const uint64_t earlier = inc.segment_bytes - last_bytes;
  const uint64_t in_last = filter.finish_block_end - std::min<uint64_t>(filter.finish_block_end, kSegmentHeaderBytes);
  return (earlier > headers ? earlier - headers : 0) + in_last;
}

namespace {

constexpr uint64_t kBatchBytes = 1 << 20;

// A batch of the replay: up to kBatchBytes of consecutive blocks and the
// entries they yield, sorted by the apply group of their partition.
// Reused once every group has applied it.
struct Batch {
  uint64_t seq = 0;      // 1, 2, ... in reading order
  uint32_t segment = 0;  // newest first: its blocks' segment, 1 for the newest; else 0
  std::vector<Block> blocks;
  std::vector<Bytes> raw;                       // decompressed payloads, one per LZ4 block
  std::vector<std::vector<DataEntry>> groups;   // to apply, in WAL order within each
  uint64_t records = 0, filtered = 0, applied = 0;
  size_t home = 0;  // the worker that takes it from the pool
  // Under Replay::mu_ once the batch is in the window:
  bool decoded = false;
  bool pause_before = false;  // the sink asked for a pause when the batch was read
  size_t groups_left = 0;     // groups yet to apply it

  void reset(size_t group_count) {
    blocks.clear();
    segment = 0;
    groups.resize(group_count);
    for (auto& g : groups) g.clear();
    records = filtered = applied = 0;
    decoded = pause_before = false;
    groups_left = group_count;
  }
};

// Batches handed out and taken back, so a long replay allocates only its
// first few. A batch goes back to the worker that read it last: the lists
// it holds are written again by the core whose cache has them (a batch
// read by one worker after another moved its lists from core to core, and
// the writes waited for them). A worker whose own are all in use makes a
// new one up to `most`, then takes another worker's: kept apart, the
// workers' batches could grow to workers * (2 * workers + 2) in all.
class BatchPool {
 public:
  BatchPool(size_t workers, size_t most) : free_(workers), most_(most) {}
  Batch* take(size_t worker) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Batch*>* from = &free_[worker];
    if (all_.size() >= most_) {
      for (size_t i = 1; from->empty() && i < free_.size(); ++i) from = &free_[(worker + i) % free_.size()];
    }
    if (from->empty()) {
      all_.push_back(std::make_unique<Batch>());
      all_.back()->home = worker;
      return all_.back().get();
    }
    Batch* b = from->back();
    from->pop_back();
    b->home = worker;
    return b;
  }
  void give(Batch* b) {
    b->blocks.clear();  // lets the reader reuse their buffers
    std::lock_guard<std::mutex> lock(mu_);
    free_[b->home].push_back(b);
  }
  size_t allocated() {
    std::lock_guard<std::mutex> lock(mu_);
    return all_.size();
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<Batch>> all_;
  std::vector<std::vector<Batch*>> free_;  // by the worker each batch goes back to
  const size_t most_;
};

// Workers of a replay: the threads asked for, at most those the arena
// runs at once. A worker that never runs would leave its group to the
// others' help, which comes after reading ahead: the batches read and not
// yet applied would grow to the most allowed (2 * workers + 2), and
// --threads 128 on 2 cores held 258 MiB of them.
size_t workers(unsigned threads) {
  return std::min<size_t>(thread_count(threads), std::max(1, tbb::this_task_arena::max_concurrency()));
}

// One replay: `threads` workers share the work, each a loop that takes
// the next step there is (Replay::next_step):
// - apply its own group's part of the next batch, in WAL order: a
//   partition belongs to one apply group, and a group's parts go to the
//   worker of the same number whenever it is free, so a partition's
//   entries stay in one core's cache;
// - read the next batch (one reader at a time) and decode it on the same
//   thread, right after the kernel copied it;
// - apply another group's next part (a worker whose own group waits while
//   no batch can be read helps, so no part waits for one worker);
// - else wait for a change.
// Every step is open to every worker, so the replay ends with one worker
// as with many.
class Replay {
 public:
  // `newest_first`: the reader gives the segments newest first, for a sink that takes them so.
  Replay(const NodeWal& wal, const ReplayFilter& filter, const std::vector<CacheGroup>& groups, ReplaySink& sink,
         const ReplayOptions& options, ProgressHub& progress, BlockReader& reader, bool newest_first)
      : wal_(wal),
        filter_(filter),
        sink_(sink),
        options_(options),
        progress_(progress),
        reader_(reader),
        workers_(workers(options.threads)),
        max_batches_(2 * workers_ + 2),
        group_of_(static_cast<uint32_t>(workers_)),
        applied_seq_(workers_, 0),
        applying_(workers_, false),
        wants_records_(sink.wants_records()),
        newest_first_(newest_first),
        pool_(workers_, 2 * max_batches_) {  // 2 workers: as many as they could hold kept apart
    assert(filter.ordered());  // decide() relies on it
    for (const CacheGroup& g : groups) {
      if (options.groups.empty() || std::count(options.groups.begin(), options.groups.end(), g.name) > 0) {
        groups_.insert(g.id);
      } else {
        all_groups_ = false;
      }
    }
  }

  Status run(ReplayReport& report);

 private:
  struct Step {
    enum Kind { kApply, kPause, kRead, kWait, kDone } kind = kWait;
    size_t group = 0;
    Batch* batch = nullptr;
  };
  void work(size_t self);
  Step next_step(size_t self);
  bool claim(size_t group, Step& step);
  Batch* read(size_t self);
  void read_and_decode(size_t self);
  void decode(Batch& batch);
  Status decode_record(Batch& batch, const RecordView& r);
  void apply(size_t group, Batch* batch);
  void pause(Batch* batch);
  void changed() {
    events_.fetch_add(1, std::memory_order_release);
    events_.notify_all();
  }

  const NodeWal& wal_;
  const ReplayFilter& filter_;
  ReplaySink& sink_;
  const ReplayOptions& options_;
  ProgressHub& progress_;
  BlockReader& reader_;
  const size_t workers_;  // and as many apply groups: group g is worker g's own
  const size_t max_batches_;  // read and not yet applied by every group
  const Remainder group_of_;  // the apply group of (group_id * 65537 + partition)

  std::mutex mu_;  // guards what follows, up to events_
  std::deque<Batch*> window_;      // read, not applied by every group yet; in WAL order
  uint64_t read_seq_ = 0;          // the last batch read
  std::vector<uint64_t> applied_seq_;  // by group: the last batch it applied
  std::vector<bool> applying_;     // by group: a worker applies its part now
  bool reading_ = false;           // a worker reads now
  bool read_ended_ = false;        // no batch follows
  bool pausing_ = false;           // a worker runs the sink's pause: no apply meanwhile
  bool broken_ = false;            // a step threw: every worker stops
  std::exception_ptr thrown_;      // the first exception a step threw
  std::atomic<uint64_t> events_{0};  // counts the changes a waiting worker may wait for

  const bool wants_records_;
  const bool newest_first_;
  std::optional<Block> carried_;  // newest first: the first block of the next segment, read last
  std::set<uint32_t> groups_;
  bool all_groups_ = true;
  FirstError error_;
  std::atomic<bool> reached_finish_{false};
  std::atomic<bool> saw_snapshot_{false};              // the CLUSTER_SNAPSHOT record at filter_.snapshot
  uint64_t applied_ = 0, filtered_ = 0, records_ = 0;  // of retired batches, under mu_
  BatchPool pool_;
};

void Replay::work(size_t self) {
  try {
    for (;;) {
      const uint64_t seen = events_.load(std::memory_order_acquire);
      Step step = next_step(self);
      switch (step.kind) {
        case Step::kApply: apply(step.group, step.batch); break;
        case Step::kPause: pause(step.batch); break;
        case Step::kRead: read_and_decode(self); break;
        case Step::kWait: events_.wait(seen, std::memory_order_acquire); break;
        case Step::kDone: return;
      }
    }
  } catch (...) {
    // Out of memory, mostly. The step that threw left its marks (a
    // read or an apply under way) for good: every worker stops at its
    // next step instead of waiting for them, and run() throws this.
    // Nothing here allocates (a Status would): a second throw would
    // leave the others asleep.
    {
      std::lock_guard<std::mutex> lock(mu_);
      broken_ = true;
      if (!thrown_) thrown_ = std::current_exception();
    }
    changed();
  }
}

Replay::Step Replay::next_step(size_t self) {
  std::lock_guard<std::mutex> lock(mu_);
  if (broken_) return Step{Step::kDone};
  Step step;
  if (claim(self, step)) return step;  // its own group
  if (!reading_ && !read_ended_ && window_.size() < max_batches_) {
    reading_ = true;
    return Step{Step::kRead};
  }
  for (size_t i = 1; i < workers_; ++i) {
    if (claim((self + i) % workers_, step)) return step;
  }
  if (read_ended_ && !reading_ && window_.empty()) return Step{Step::kDone};
  return Step{Step::kWait};
}

// Under mu_: whether `group` can apply its next batch now (then claimed,
// or the sink's pause before it claimed instead).
bool Replay::claim(size_t group, Step& step) {
  if (applying_[group] || pausing_ || window_.empty()) return false;
  const uint64_t seq = applied_seq_[group] + 1;
  const uint64_t index = seq - window_.front()->seq;
  if (index >= window_.size()) return false;
  Batch* b = window_[index];
  if (!b->decoded) return false;
  if (b->pause_before) {
    // Once every group applied the batch before, and none applies now.
    for (size_t g = 0; g < workers_; ++g) {
      if (applying_[g] || applied_seq_[g] + 1 < seq) return false;
    }
    pausing_ = true;
    step = Step{Step::kPause, group, b};
    return true;
  }
  applying_[group] = true;
  step = Step{Step::kApply, group, b};
  return true;
}

Batch* Replay::read(size_t self) {
  const bool cancelled = options_.cancel && *options_.cancel;
  if (error_.failed() || (reached_finish_ && !newest_first_) || cancelled) {
    if (cancelled) error_.set(Status::cancelled("restore cancelled"));
    return nullptr;
  }
  Batch* batch = pool_.take(self);
  batch->reset(workers_);
  uint64_t bytes = 0, counted = 0;
  Block b;
  while (bytes < kBatchBytes) {
    if (carried_) {
      b = std::move(*carried_);
      carried_.reset();
    } else {
      Result<bool> more = reader_.next(b);
      if (!more.ok()) {
        error_.set(more.status());
        break;
      }
      if (!more.value()) break;
    }
    if (newest_first_ && !batch->blocks.empty() && b.file != batch->blocks.front().file) {
      carried_ = std::move(b);  // a batch holds one segment's blocks
      break;
    }
    const uint64_t block_bytes = kBlockHeaderBytes + b.stored.size();
    bytes += block_bytes;
    if (b.header.first <= filter_.finish) {  // progress counts up to the FINISH block, not what is read past it
      counted += block_bytes;
      if (b.is_segment_end()) {  // the zeros after it are not read
        progress_.trim(reader_.segment_headers().back().segment_bytes - (b.file_offset + block_bytes));
      }
    }
    batch->blocks.push_back(std::move(b));
  }
  if (batch->blocks.empty()) {
    pool_.give(batch);
    return nullptr;
  }
  progress_.read(counted, wal_.node_id);
  // The sink's pause is asked for in reading order, batch by batch; it
  // runs once every earlier batch is applied. Newest first, only before a
  // segment's first batch: what is spilled then is whole segments.
  const Block& first = batch->blocks.front();
  if (newest_first_) batch->segment = first.file + 1;
  batch->pause_before = options_.pause_due && !error_.failed() &&
                        (!newest_first_ || first.file_offset == kSegmentHeaderBytes) && options_.pause_due();
  return batch;
}

void Replay::read_and_decode(size_t self) {
  Batch* batch = read(self);
  {
    std::lock_guard<std::mutex> lock(mu_);
    reading_ = false;
    if (batch == nullptr) {
      read_ended_ = true;
    } else {
      batch->seq = ++read_seq_;
      window_.push_back(batch);
    }
  }
  changed();
  if (batch == nullptr) return;
  decode(*batch);
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch->decoded = true;
  }
  changed();
}

// LZ4, records, the cut filter, the apply group.
void Replay::decode(Batch& batch) {
  if (fault::allocation_fails("replay.decode")) throw std::bad_alloc();
  if (batch.raw.size() < batch.blocks.size()) batch.raw.resize(batch.blocks.size());
  for (size_t i = 0; i < batch.blocks.size() && !error_.failed(); ++i) {
    const Block& b = batch.blocks[i];
    Result<ByteSpan> raw = block_raw_payload(b.header, b.stored, batch.raw[i]);
    Status s = raw.ok() ? for_each_record(b.header, raw.value(),
                                          [&](const RecordView& r) { return decode_record(batch, r); })
                        : raw.status();
    // Keeps the code: a sink's I/O error is not corruption of the WAL.
    if (!s.ok()) error_.set(s.with_context(reader_.path(b.file) + " at offset " + std::to_string(b.file_offset)));
  }
}

Status Replay::decode_record(Batch& batch, const RecordView& r) {
  ++batch.records;
  if (r.pointer >= filter_.finish) {
    reached_finish_ = true;
    return {};
  }
  if (r.type != RecordType::kData) {
    if (r.pointer == filter_.snapshot && r.type == RecordType::kClusterSnapshot) saw_snapshot_ = true;
    if (!wants_records_ || r.pointer < filter_.snapshot) return {};
    bool kept = true;
    if (r.type == RecordType::kTx) {
      Result<RecordPayload> tx = decode_payload(r.type, r.payload);
      if (!tx.ok()) return tx.status();
      kept = filter_.decide(r.pointer, std::get<TxRecord>(tx.value()).near_xid) == ReplayFilter::Verdict::kApply;
    }
    return sink_.on_record(wal_.node_index, r, kept);
  }
  // A record's entries are mostly one transaction's: its verdict is
  // decided once.
  std::optional<Version> xid;
  ReplayFilter::Verdict v{};
  // `e` is copied field by field into its list: nothing here takes its
  // address (push_back, and decide() of e.near_xid, did), so the compiler
  // keeps its fields in registers. On the stack, the list's 16-byte loads
  // of the fields just stored one by one missed store forwarding and
  // stalled: two thirds of this function's time.
  return for_each_data_entry(r.payload, [&](const DataEntry& e) {
    const Version near_xid = e.near_xid;
    const uint32_t group_id = e.group_id;
    if (xid != near_xid) {
      v = filter_.decide(r.pointer, near_xid);
      xid = near_xid;
    }
    if (v == ReplayFilter::Verdict::kApply && (all_groups_ || groups_.count(group_id))) {
      std::vector<DataEntry>& list = batch.groups[group_of_.of(group_id * 65537u + e.partition)];
      list.resize(list.size() + 1);
      list.back() = e;
      ++batch.applied;
    } else if (r.pointer >= filter_.snapshot) {  // older ones are in the snapshot's files
      ++batch.filtered;
    }
  });
}

// One group's part of a batch; the batch goes back to the pool once every
// group applied it (batches are retired in WAL order: each group applies
// them in that order).
void Replay::apply(size_t group, Batch* batch) {
  if (!batch->groups[group].empty() && !error_.failed()) {
    // Isolated: a sink that waits for oneTBB work of its own must not pick
    // up another worker's loop here.
    if (fault::allocation_fails("replay.apply")) throw std::bad_alloc();
    Status s;
    tbb::this_task_arena::isolate([&] {
      s = newest_first_ ? sink_.apply_segment(wal_.node_index, batch->segment, batch->groups[group])
                        : sink_.apply_many(wal_.node_index, batch->groups[group]);
    });
    if (!s.ok()) error_.set(s);
  }
  stream_fence();  // the group's next part may be applied by another thread
  uint64_t applied = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    applying_[group] = false;
    applied_seq_[group] = batch->seq;
    --batch->groups_left;
    while (!window_.empty() && window_.front()->groups_left == 0) {
      Batch* done = window_.front();
      window_.pop_front();
      records_ += done->records;
      filtered_ += done->filtered;
      applied_ += done->applied;
      applied += done->applied;
      pool_.give(done);
    }
  }
  if (applied > 0) progress_.applied(applied);
  changed();
}

void Replay::pause(Batch* batch) {
  if (!error_.failed()) tbb::this_task_arena::isolate([&] { error_.set(options_.at_pause()); });
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch->pause_before = false;
    pausing_ = false;
  }
  changed();
}

Status Replay::run(ReplayReport& report) {
  tbb::parallel_for(size_t{0}, workers_, [&](size_t self) { work(self); }, tbb::simple_partitioner());
  if (thrown_) std::rethrow_exception(thrown_);
  // The sink's pause once more, after the last batch.
  if (options_.pause_due && !error_.failed() && options_.pause_due()) {
    tbb::this_task_arena::isolate([&] { error_.set(options_.at_pause()); });
  }
  WALCUT_RETURN_IF_ERROR(error_.get());
  if (!reached_finish_) {
    return Status::corruption("the WAL of node " + std::to_string(wal_.node_index) + " ends before the FINISH record at " +
                              filter_.finish.to_string());
  }
  // The filter skips what is before this pointer, taken from the full
  // snapshot's metadata: it must be the snapshot's own record.
  if (!saw_snapshot_) {
    return Status::corruption((wal_.segment_paths.empty() ? std::string("the WAL") : wal_.segment_paths.front()) +
                              ": no CLUSTER_SNAPSHOT record at " + filter_.snapshot.to_string() +
                              ", where the full snapshot's metadata of node " + std::to_string(wal_.node_index) +
                              " places it");
  }
  report.segments += reader_.counters().segments;
  report.blocks += reader_.counters().blocks;
  report.bytes_read += reader_.counters().block_bytes;
  report.records += records_;
  report.entries_applied += applied_;
  report.entries_filtered += filtered_;
  report.io_engine = reader_.engine_name();
  report.workers = std::max(report.workers, static_cast<unsigned>(workers_));
  report.batches = std::max(report.batches, static_cast<unsigned>(pool_.allocated()));
  return {};
}

}  // namespace

Status replay_wal(const NodeWal& wal, const ReplayFilter& filter, const std::vector<CacheGroup>& groups,
                  ReplaySink& sink, const ReplayOptions& options, ProgressHub& progress, ReplayReport& report) {
  BlockReaderOptions ro;
  ro.io = options.io;
  ro.mode = TailMode::kStrict;
  ro.cluster_id = wal.cluster_id;  // a segment of another cluster or node is refused
  ro.node_index = wal.node_index;
  ro.newest_end = filter.finish_block_end;  // nothing after FINISH's block is read
  ro.newest_first = options.newest_first && sink.takes_newest_first();
  std::vector<std::string> paths = wal.segment_paths;
  if (ro.newest_first) std::reverse(paths.begin(), paths.end());
  Result<std::unique_ptr<BlockReader>> reader = BlockReader::open(std::move(paths), ro);
  if (!reader.ok()) return reader.status();
  WALCUT_RETURN_IF_ERROR(sink.begin(wal.node_index, groups));
  Replay replay(wal, filter, groups, sink, options, progress, **reader, ro.newest_first);
  return replay.run(report);
}

Status check_group_names(const std::vector<std::string>& names, const std::vector<CacheGroup>& groups,
                         const std::string& snapshot_dir) {
  for (const std::string& name : names) {
    if (name.empty()) return Status::invalid_argument("an empty cache group name (--groups ''?) for " + snapshot_dir);
    if (std::none_of(groups.begin(), groups.end(), [&](const CacheGroup& g) { return g.name == name; })) {
      return Status::invalid_argument("no cache group named " + name + " in " + snapshot_dir);
    }
  }
  return {};
}

Result<SnapshotMeta> read_node_snapshot_meta(const std::string& snapshot_dir, uint16_t node_index,
                                             const std::vector<std::string>& groups) {
  Result<std::vector<SnapshotMeta>> metas = read_snapshot_metas(snapshot_dir);
  if (!metas.ok()) return metas.status();
  const SnapshotMeta* me = find_node_meta(metas.value(), node_index);
  if (!me) {
    return Status::not_found(snapshot_dir + ": no full snapshot metadata for node " + std::to_string(node_index));
  }
  WALCUT_RETURN_IF_ERROR(check_group_names(groups, me->groups, snapshot_dir));
  return *me;
}

Status replay_node(const std::string& snapshot_dir, uint64_t n, uint16_t node_index, ReplaySink& sink,
                   const ReplayOptions& options, ReplayReport& report) {
  Result<SnapshotMeta> me = read_node_snapshot_meta(snapshot_dir, node_index, options.groups);
  if (!me.ok()) return me.status();
  const SnapshotMeta* base = &me.value();
  if (n == 0) return sink.begin(node_index, base->groups);  // the full snapshot alone: nothing to replay
  WALCUT_RETURN_IF_ERROR(check_increment_count(snapshot_dir, n));
  Result<NodeIncrements> inc = read_node_increments(snapshot_dir, *base, n);
  if (!inc.ok()) return inc.status();
  ReadOptions filter_io = options.io;
  filter_io.on_chunk = {};  // the replay's reads are shown, each segment once; the filter reads some on their own
  Result<ReplayFilter> filter = load_replay_filter(inc.value(), filter_io);
  if (!filter.ok()) return filter.status();
  ProgressHub progress(options.progress, "replay", bytes_to_finish(inc.value(), filter.value()));
  NodeWal wal{node_index, base->node_id, base->cluster_id, inc->segment_paths, inc->segment_bytes};
  Status s = with_threads(
      options.threads, [&] { return replay_wal(wal, filter.value(), base->groups, sink, options, progress, report); });
  if (s.ok()) progress.report();
  return s;
}

}  // namespace walcut
