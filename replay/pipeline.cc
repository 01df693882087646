#include "replay/pipeline.h"

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <cassert>
#include <memory>
#include <set>
#include <thread>

#include "cut/increment_chain.h"
#include "engine/snapshot.h"
#include "io/block.h"
#include "io/block_reader.h"
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
// Stripes per thread: a batch waits for its predecessor's stripe, one at a
// time, so finer stripes let consecutive batches' applies overlap more.
constexpr size_t kStripesPerThread = 4;

// A token of the pipeline: up to kBatchBytes of consecutive blocks and the
// entries they yield, sorted into stripes. Reused once applied.
struct Batch {
  uint64_t seq = 0;  // 1, 2, ... in WAL order
  std::vector<Block> blocks;
  std::vector<Bytes> raw;                       // decompressed payloads, one per LZ4 block
  std::vector<std::vector<DataEntry>> stripes;  // to apply, in WAL order within each
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

// The stages of one replay, sharing its state.
class Replay {
 public:
  Replay(const NodeWal& wal, const ReplayFilter& filter, const std::vector<CacheGroup>& groups, ReplaySink& sink,
         const ReplayOptions& options, ProgressHub& progress, BlockReader& reader)
      : wal_(wal), filter_(filter), sink_(sink), options_(options), progress_(progress), reader_(reader),
        threads_(thread_count(options.threads)),
        stripe_count_(threads_ == 1 ? 1 : threads_ * kStripesPerThread),
        lanes_(std::make_unique<Lane[]>(stripe_count_)),
        wants_records_(sink.wants_records()) {
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
  Batch* read(tbb::flow_control& fc);
  Batch* decode(Batch* batch);
  Status decode_record(Batch& batch, const RecordView& r);
  Batch* order(Batch* batch);
  void pause_if_due(uint64_t applied_seq);
  void apply(Batch* batch);

  const NodeWal& wal_;
  const ReplayFilter& filter_;
  ReplaySink& sink_;
  const ReplayOptions& options_;
  ProgressHub& progress_;
  BlockReader& reader_;
  // The last batch applied to a stripe: batch k applies stripe s once
  // batch k-1 has, so a (group, partition) has one owner at a time and
  // sees its entries in WAL order, while consecutive batches apply side by
  // side, a stripe apart.
  struct alignas(64) Lane {
    std::atomic<uint64_t> done{0};
  };
  void wait_for_lane(size_t stripe, uint64_t seq) const;

  const size_t threads_;
  const size_t stripe_count_;
  std::unique_ptr<Lane[]> lanes_;
  uint64_t read_seq_ = 0;
  const bool wants_records_;
  std::set<uint32_t> groups_;
  bool all_groups_ = true;
  FirstError error_;
  std::atomic<bool> reached_finish_{false};
  std::atomic<uint64_t> applied_{0}, filtered_{0}, records_{0};
  BatchPool pool_;
};

Batch* Replay::read(tbb::flow_control& fc) {
  const bool cancelled = options_.cancel && *options_.cancel;
  if (error_.failed() || reached_finish_ || cancelled) {
    if (cancelled) error_.set(Status::cancelled("restore cancelled"));
    fc.stop();
    return nullptr;
  }
  Batch* batch = pool_.take();
  batch->reset(stripe_count_);
  uint64_t bytes = 0, counted = 0;
  Block b;
  while (bytes < kBatchBytes) {
    Result<bool> more = reader_.next(b);
    if (!more.ok()) {
      error_.set(more.status());
      break;
    }
    if (!more.value()) break;
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
    fc.stop();
    return nullptr;
  }
  progress_.read(counted, wal_.node_id);
  batch->seq = ++read_seq_;
  return batch;
}

// LZ4, records, the cut filter, the stripe: on every thread.
Batch* Replay::decode(Batch* batch) {
  if (batch->raw.size() < batch->blocks.size()) batch->raw.resize(batch->blocks.size());
  for (size_t i = 0; i < batch->blocks.size() && !error_.failed(); ++i) {
    const Block& b = batch->blocks[i];
    Result<ByteSpan> raw = block_raw_payload(b.header, b.stored, batch->raw[i]);
    Status s = raw.ok() ? for_each_record(b.header, raw.value(),
                                          [&](const RecordView& r) { return decode_record(*batch, r); })
                        : raw.status();
    // Keeps the code: a sink's I/O error is not corruption of the WAL.
    if (!s.ok()) error_.set(s.with_context(reader_.path(b.file) + " at offset " + std::to_string(b.file_offset)));
  }
  return batch;
}

Status Replay::decode_record(Batch& batch, const RecordView& r) {
  ++batch.records;
  if (r.pointer >= filter_.finish) {
    reached_finish_ = true;
    return {};
  }
  if (r.type != RecordType::kData) {
    if (!wants_records_ || r.pointer < filter_.snapshot) return {};
    bool kept = true;
    if (r.type == RecordType::kTx) {
      Result<RecordPayload> tx = decode_payload(r.type, r.payload);
      if (!tx.ok()) return tx.status();
      kept = filter_.decide(r.pointer, std::get<TxRecord>(tx.value()).near_xid) == ReplayFilter::Verdict::kApply;
    }
    return sink_.on_record(wal_.node_index, r, kept);
  }
  return for_each_data_entry(r.payload, [&](const DataEntry& e) {
    ReplayFilter::Verdict v = filter_.decide(r.pointer, e.near_xid);
    if (v == ReplayFilter::Verdict::kApply && (all_groups_ || groups_.count(e.group_id))) {
      batch.stripes[(e.group_id * 65537u + e.partition) % stripe_count_].push_back(e);
      ++batch.applied;
    } else if (r.pointer >= filter_.snapshot) {  // older ones are in the snapshot's files
      ++batch.filtered;
    }
  });
}

void Replay::wait_for_lane(size_t stripe, uint64_t seq) const {
  for (unsigned spins = 0; lanes_[stripe].done.load(std::memory_order_acquire) < seq; ++spins) {
    if (spins >= 64) std::this_thread::yield();
  }
}

// In WAL order, one batch at a time, before its apply: the pause a sink
// asked for, once the batches before it are applied.
Batch* Replay::order(Batch* batch) {
  pause_if_due(batch->seq - 1);
  return batch;
}

void Replay::pause_if_due(uint64_t applied_seq) {
  if (!options_.pause_due || error_.failed() || !options_.pause_due()) return;
  for (size_t stripe = 0; stripe < stripe_count_; ++stripe) wait_for_lane(stripe, applied_seq);
  tbb::this_task_arena::isolate([&] { error_.set(options_.at_pause()); });
}

// Stripe by stripe, each after the previous batch's same stripe: batches
// come here in WAL order (the stage before is serial and in order), and
// each is carried on by a running thread, so the oldest never waits.
void Replay::apply(Batch* batch) {
  for (size_t stripe = 0; stripe < stripe_count_; ++stripe) {
    wait_for_lane(stripe, batch->seq - 1);
    if (!batch->stripes[stripe].empty() && !error_.failed()) {
      // Isolated: a sink that waits for oneTBB work of its own must not
      // pick up a later batch here, which would wait for this one.
      Status s;
      tbb::this_task_arena::isolate([&] { s = sink_.apply_many(wal_.node_index, batch->stripes[stripe]); });
      if (!s.ok()) error_.set(s);
    }
    stream_fence();  // the next batch's owner of these partitions may be another thread
    lanes_[stripe].done.store(batch->seq, std::memory_order_release);
  }
  records_ += batch->records;
  filtered_ += batch->filtered;
  applied_ += batch->applied;
  progress_.applied(batch->applied);
  pool_.give(batch);
}

Status Replay::run(ReplayReport& report) {
  const size_t tokens = 2 * threads_ + 2;
  tbb::parallel_pipeline(
      tokens,
      tbb::make_filter<void, Batch*>(tbb::filter_mode::serial_in_order,
                                     [&](tbb::flow_control& fc) { return read(fc); }) &
          tbb::make_filter<Batch*, Batch*>(tbb::filter_mode::parallel, [&](Batch* b) { return decode(b); }) &
          // Puts the batches back in order before the apply.
          tbb::make_filter<Batch*, Batch*>(tbb::filter_mode::serial_in_order, [&](Batch* b) { return order(b); }) &
          tbb::make_filter<Batch*, void>(tbb::filter_mode::parallel, [&](Batch* b) { apply(b); }));
  pause_if_due(read_seq_);
  WALCUT_RETURN_IF_ERROR(error_.get());
  if (!reached_finish_) {
    return Status::corruption("the WAL of node " + std::to_string(wal_.node_index) + " ends before the FINISH record at " +
                              filter_.finish.to_string());
  }
  report.segments += reader_.counters().segments;
  report.blocks += reader_.counters().blocks;
  report.bytes_read += reader_.counters().block_bytes;
  report.records += records_;
  report.entries_applied += applied_;
  report.entries_filtered += filtered_;
  report.io_engine = reader_.engine_name();
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
  Result<std::unique_ptr<BlockReader>> reader = BlockReader::open(wal.segment_paths, ro);
  if (!reader.ok()) return reader.status();
  WALCUT_RETURN_IF_ERROR(sink.begin(wal.node_index, groups));
  Replay replay(wal, filter, groups, sink, options, progress, **reader);
  return replay.run(report);
}

Status check_group_names(const std::vector<std::string>& names, const std::vector<CacheGroup>& groups,
                         const std::string& snapshot_dir) {
  for (const std::string& name : names) {
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
  Result<ReplayFilter> filter = load_replay_filter(inc.value(), options.io);
  if (!filter.ok()) return filter.status();
  std::unique_ptr<tbb::global_control> limit;
  if (options.threads > 0) {
    limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, options.threads);
  }
  ProgressHub progress(options.progress, "replay", bytes_to_finish(inc.value(), filter.value()));
  NodeWal wal{node_index, base->node_id, base->cluster_id, inc->segment_paths, inc->segment_bytes};
  Status s = replay_wal(wal, filter.value(), base->groups, sink, options, progress, report);
  if (s.ok()) progress.report();
  return s;
}

}  // namespace walcut
