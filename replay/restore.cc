#include "replay/restore.h"

#include <fcntl.h>
#include <oneapi/tbb/parallel_for.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <stop_token>
#include <thread>

#include "cut/increment.h"
#include "cut/increment_chain.h"
#include "cut/replay_filter.h"
#include "engine/affinity.h"
#include "engine/node_meta.h"
#include "engine/partition_file.h"
#include "engine/snapshot.h"
#include "io/file_util.h"
#include "io/names.h"
#include "replay/entry_chunks.h"
#include "replay/memory_limit.h"
#include "replay/parallel.h"
#include "replay/partition_finish.h"
#include "replay/publish.h"
#include "replay/route_sink.h"

namespace walcut {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Whether the restore asked for cache group `name` (--groups; none: all).
bool group_wanted(const RestoreOptions& o, const std::string& name) {
  return o.groups.empty() || std::count(o.groups.begin(), o.groups.end(), name) > 0;
}

// What one restore reads and writes, decided before anything is read.
struct Plan {
  std::vector<SnapshotMeta> bases;             // every node of the snapshot, by node index
  std::vector<bool> restored;                  // by node index: written to dest
  std::vector<std::vector<RoutedCopy*>> routed;  // by node index: the copies its WAL feeds
  std::vector<std::unique_ptr<RoutedCopy>> copies;
  struct Task {                                // one partition's copies, finished together
    const CacheGroup* group;
    uint16_t partition;
    std::vector<CopyToFinish> copies;
    uint64_t bytes() const {  // of the copies' files in the snapshot
      uint64_t n = 0;
      for (const CopyToFinish& c : copies) n += c.listed ? c.listed->bytes : 0;
      return n;
    }
  };
  std::vector<Task> tasks;
  std::vector<bool> finished;                  // by task
  std::vector<ManifestEntry> unread;           // listed files of restored nodes no task reads: checked alone

  bool is_source(uint16_t node) const { return !routed[node].empty(); }
};

// The copies a restore writes, and for the ATOMIC partitions among them
// every other copy (a peer, compared, not written). `with_wal`: routes the
// WAL's entries to each copy. An empty `staging`: nothing is to be written.
Result<Plan> make_plan(const RestoreOptions& o, std::vector<SnapshotMeta> bases, const std::string& staging,
                       bool with_wal) {
  Plan plan;
  plan.bases = std::move(bases);
  std::sort(plan.bases.begin(), plan.bases.end(),
            [](const SnapshotMeta& a, const SnapshotMeta& b) { return a.node_index < b.node_index; });
  const size_t n = plan.bases.size();
  plan.restored.assign(n, false);
  plan.routed.resize(n);
  for (const SnapshotMeta& b : plan.bases) plan.restored[b.node_index] = !o.node || *o.node == b.node_id;
  const SnapshotMeta& m = plan.bases.front();
  Affinity aff(m.groups, m.baseline);
  // Paths built from the snapshot's names stay under their roots (io/names.h).
  PathsUnder in_snapshot(o.snapshot_dir, /*list_dirs=*/true), in_staging(staging);
  // By node, by manifest entry: whether a task reads the file.
  std::vector<std::vector<bool>> read(n);
  for (const SnapshotMeta& b : plan.bases) read[b.node_index].assign(b.files.size(), false);
  auto copy_of = [&](uint16_t node, const CacheGroup& g, uint16_t p) -> Result<CopyToFinish> {
    const SnapshotMeta& b = plan.bases[node];
    CopyToFinish c;
    c.node_index = node;
    const std::string rel = snapshot_partition_path(b.node_id, g.name, p);
    Result<std::string> base = in_snapshot.path(rel);
    if (!base.ok()) return base.status();
    c.base_path = std::move(base).value();
    c.listed = find_listed(b, rel);
    if (c.listed) read[node][static_cast<size_t>(c.listed - b.files.data())] = true;
    if (plan.restored[node] && !staging.empty()) {
      Result<std::string> out = in_staging.path(partition_path(b.node_id + "/db", g, p));
      if (!out.ok()) return out.status();
      c.out_path = std::move(out).value();
    }
    if (with_wal) {
      plan.copies.push_back(std::make_unique<RoutedCopy>());
      c.routed = plan.copies.back().get();
      c.routed->group_id = g.id;
      c.routed->partition = p;
      plan.routed[node].push_back(c.routed);
    }
    return c;
  };
  for (const CacheGroup& g : m.groups) {
    if (!group_wanted(o, g.name)) continue;
    for (uint16_t p = 0; p < g.partitions; ++p) {
      std::vector<uint16_t> owners = aff.owners(g.id, p);
      std::sort(owners.begin(), owners.end());  // a peer's place is the same in every restore
      const bool any = std::any_of(owners.begin(), owners.end(), [&](uint16_t x) { return plan.restored[x]; });
      if (!any) continue;
      if (g.mode == CacheMode::kAtomic) {
        Plan::Task t{&g, p, {}};
        for (uint16_t x : owners) {
          Result<CopyToFinish> c = copy_of(x, g, p);
          if (!c.ok()) return c.status();
          t.copies.push_back(std::move(c).value());
        }
        plan.tasks.push_back(std::move(t));
        continue;
      }
      for (uint16_t x : owners) {
        if (!plan.restored[x]) continue;
        Result<CopyToFinish> c = copy_of(x, g, p);
        if (!c.ok()) return c.status();
        plan.tasks.push_back(Plan::Task{&g, p, {std::move(c).value()}});
      }
    }
  }
  // The restored nodes' other files (groups not asked for) are checked too.
  for (const SnapshotMeta& b : plan.bases) {
    if (!plan.restored[b.node_index]) continue;
    for (size_t i = 0; i < b.files.size(); ++i) {
      const ManifestEntry& f = b.files[i];
      if (read[b.node_index][i]) continue;
      Result<std::string> path = in_snapshot.path(f.path);  // refused here, before anything is read
      if (!path.ok()) return path.status();
      plan.unread.push_back(f);
    }
  }
  plan.finished.assign(plan.tasks.size(), false);
  return plan;
}

// Every copy a task reads must be in its node's manifest: a snapshot lists
// every partition its nodes own.
Status check_listed(const Plan& plan) {
  for (const Plan::Task& t : plan.tasks) {
    for (const CopyToFinish& c : t.copies) {
      if (!c.listed) {
        return Status::corruption(c.base_path + ": node " + plan.bases[c.node_index].node_id + " owns group " +
                                  t.group->name + " partition " + std::to_string(t.partition) +
                                  " but its manifest does not list this file");
      }
    }
  }
  return {};
}

Status check_unread(const RestoreOptions& o, const std::vector<ManifestEntry>& files, ProgressHub& progress) {
  FirstError error;
  tbb::parallel_for(size_t{0}, files.size(), [&](size_t i) {
    Result<std::string> under = path_under(o.snapshot_dir, files[i].path);
    if (!under.ok()) return error.set(under.status());
    Result<Bytes> bytes = read_listed_file(under.value(), files[i]);
    if (!bytes.ok()) error.set(bytes.status());
    progress.read(files[i].bytes, "");
  });
  return error.get();
}

// Spills a node's routed entries into the staging directory when all the
// routed entries pass the budget.
class Spiller {
 public:
  Spiller(std::string dir, MemoryGauge& gauge) : dir_(std::move(dir)), gauge_(gauge) {}
  // Spills into up to `pieces` files at once (RouteSink::spill).
  Status maybe_spill(uint16_t node, RouteSink& sink, size_t pieces) {
    if (!gauge_.over_budget()) return {};
    Result<uint64_t> written = sink.spill(pieces, [&]() -> Result<std::unique_ptr<SpillWriter>> {
      uint64_t seq;
      {
        std::lock_guard<std::mutex> lock(mu_);
        seq = files_++;
      }
      return SpillWriter::create(dir_ + "/" + std::to_string(node) + "-" + std::to_string(seq) + ".spill", remover_);
    });
    if (!written.ok()) return written.status();
    bytes_ += written.value();
    return {};
  }
  uint64_t files() const { return files_; }
  uint64_t bytes() const { return bytes_; }
  MemoryGauge& gauge() { return gauge_; }
  // Returns once the spill files whose slices are all gone are removed.
  void drain_removals() { remover_->drain(); }

 private:
  const std::string dir_;
  const std::shared_ptr<FileRemover> remover_ = std::make_shared<FileRemover>();
  MemoryGauge& gauge_;
  std::mutex mu_;
  uint64_t files_ = 0;
  std::atomic<uint64_t> bytes_{0};
};

// The threads a restore runs on: those asked for, no more than its arena
// runs (with_threads).
size_t threads_of(const RestoreOptions& o) { return std::min(thread_count(o.threads), thread_count(0)); }

// `io` for one of `readers` readers running at once: they share its
// reads in flight, at least one each.
ReadOptions shared_by(const ReadOptions& io, size_t readers) {
  ReadOptions one = io;
  one.queue_depth = static_cast<uint32_t>(std::max<size_t>(1, io.queue_depth / std::max<size_t>(1, readers)));
  return one;
}

// Loads the replay filter of every node of `chain` (by node index): its
// cut records, read from its last segments (load_replay_filter), so they
// are checked before any replay and the replay's total is known. A node no
// part of the restore reads (under --node) is checked too: a cut is whole
// only if every node has its records, and metadata naming a cut that
// failed is refused only by the nodes that lack them (docs/restore.md,
// "The filter"); of such a node only the blocks holding them are read,
// where its metadata records them.
Result<std::vector<ReplayFilter>> load_filters(const RestoreOptions& o, const Plan& plan,
                                               const std::vector<NodeIncrements>& chain) {
  uint64_t bytes_total = 0;
  for (const NodeIncrements& inc : chain) bytes_total += inc.increments.back().files.back().bytes;
  ProgressHub progress(o.progress, "verify", bytes_total);
  progress.report();
  std::vector<ReplayFilter> filters(chain.size());
  const ReadOptions io = shared_by(o.io, std::min(chain.size(), threads_of(o)));  // as the replay's pipelines do
  FirstError error;
  tbb::parallel_for(size_t{0}, chain.size(), [&](size_t i) {
    const NodeIncrements& inc = chain[i];
    const FilterRead read =
        plan.is_source(inc.base.node_index) ? FilterRead::kWholeSegments : FilterRead::kCutRecordBlocks;
    Result<ReplayFilter> f = load_replay_filter(inc, io, read);
    if (!f.ok()) return error.set(f.status().with_context("node " + inc.base.node_id));
    filters[i] = std::move(f).value();
    progress.read(inc.increments.back().files.back().bytes, inc.base.node_id);
  });
  WALCUT_RETURN_IF_ERROR(error.get());
  progress.report();
  return filters;
}

// A dry run's sink: the pipeline reads, checks and counts the entries; none is kept.
class DiscardSink final : public ReplaySink {
 public:
  Status apply(const ReplayEntry&) override { return {}; }
  Status apply_many(uint16_t, std::span<const DataEntry>) override { return {}; }
};

// Called with copies no later pass of their node routes to; `shown`: no
// other node of the wave is replaying (its progress may be shown); once
// `failed` is set (another node failed), it stops at its next partition.
using BetweenPasses =
    std::function<Status(std::span<RoutedCopy* const> whole, bool shown, const std::atomic<bool>& failed)>;

// The budget of the buckets (docs/restore.md, "Memory").
uint64_t budget_of(const RestoreOptions& o) {
  return o.memory_limit > 0 ? o.memory_limit : default_memory_limit_bytes();
}

// Whether the largest WALs of `nodes` nodes, were every byte of them
// routed, would take at most a quarter of the budget: far enough from it
// that holding them at once, with the chunks' unused ends, cannot bring
// the restore near it.
bool far_from_budget(size_t nodes, const std::vector<NodeIncrements>& chain, uint64_t budget) {
  uint64_t largest = 0;
  for (const NodeIncrements& n : chain) largest = std::max(largest, n.segment_bytes);
  return largest * nodes <= budget / 4;
}

// How many nodes' WALs are replayed at once, each in a pipeline of
// threads_of / that many threads. Far from the budget, a node per thread
// (as many as there are nodes): a pipeline of one thread reads, decodes
// and applies on one core, and a node's entries never cross to another
// core (`small` on 2 cores in 0.92 of the time and 0.90 of the CPU of one
// pipeline of two threads, docs/benchmarks.md), for the memory of both
// nodes' buckets at once. Nearer, where the buckets of more nodes would
// spill, a pipeline per 4 threads.
size_t nodes_side_by_side(const RestoreOptions& o, const Plan& plan, const std::vector<NodeIncrements>& chain) {
  size_t sources = 0;
  for (const SnapshotMeta& b : plan.bases) sources += plan.is_source(b.node_index);
  const size_t threads = threads_of(o);
  const size_t wide = std::max<size_t>(1, std::min(sources, threads));
  if (far_from_budget(wide, chain, budget_of(o))) return wide;
  constexpr unsigned kThreadsPerPipeline = 4;
  return std::max<size_t>(1, threads / kThreadsPerPipeline);
}

// How much of the restored tree the writeback thread lets become dirty
// before it syncs (RestoreDest::start_writeback): about 10 ms of the test
// VM's disk writing, a sync a few ms of an otherwise idle thread.
constexpr uint64_t kWritebackStep = uint64_t{8} << 20;

// Whether the restored files' pages may stay dirty until the one sync
// before the publish (PartitionWrite::kCreateCached): only while the most
// the tree can be (the snapshot files it reads and every byte of the
// restored nodes' WALs) would take at most a quarter of the budget. A
// budget near the tree's size is a cgroup's limit, which charges the page
// cache too, and there each file's writeback starts as it is written.
bool output_fits_page_cache(const Plan& plan, const std::vector<NodeIncrements>& chain, uint64_t budget) {
  uint64_t most = 0;
  for (const Plan::Task& t : plan.tasks) most += t.bytes();
  for (const NodeIncrements& n : chain) most += plan.restored[n.base.node_index] ? n.segment_bytes : 0;
  return most <= budget / 4;
}

// Replays every source node, routing entries to their copies, nodes side
// by side as nodes_side_by_side says; the pipelines at once share the
// threads and the reads in flight (io.queue_depth). Without a
// spiller (a dry run) the entries are read, checked and counted, not kept.
// `between_passes` runs after a pass that dropped copies, with the copies
// it routed to the end, and after a node's last pass, with its copies
// (neither marked replayed yet): on the thread the node's replay leaves,
// beside the wave's other nodes still replaying. The nodes' copies are
// marked replayed after each wave. A node that fails stops the others at
// their next batch or partition; the first failure is returned.
// report.replay_s: the waves' time from their start to the end of their
// last node's replay.
Status replay_sources(const RestoreOptions& o, Plan& plan, const std::vector<NodeIncrements>& chain,
                      const std::vector<ReplayFilter>& filters, Spiller* spiller, const BetweenPasses& between_passes,
                      RestoreReport& report) {
  std::vector<uint16_t> sources;
  uint64_t bytes_total = 0;
  for (const SnapshotMeta& b : plan.bases) {
    if (!plan.is_source(b.node_index)) continue;
    sources.push_back(b.node_index);
    bytes_total += bytes_to_finish(chain[b.node_index], filters[b.node_index]);
  }
  ProgressHub progress(o.progress, "replay", bytes_total);
  progress.report();
  std::vector<ReplayReport> reports(sources.size());
  std::vector<Status> results(sources.size());
  std::vector<ReplayReport> rereads(sources.size());
  std::vector<unsigned> passes(sources.size(), 1);
  std::vector<Clock::time_point> replayed_at(sources.size());
  const size_t side_by_side = nodes_side_by_side(o, plan, chain);
  const bool newest_first =
      o.replay_order == RestoreOptions::Order::kNewestFirst ||
      (o.replay_order == RestoreOptions::Order::kAuto && far_from_budget(side_by_side, chain, budget_of(o)));
  // A wave's nodes (the last wave may have fewer) share the threads.
  auto wave_size = [&](size_t i) { return std::min(side_by_side, sources.size() - i / side_by_side * side_by_side); };
  std::vector<std::atomic<size_t>> replaying((sources.size() + side_by_side - 1) / side_by_side);  // by wave
  for (size_t w = 0; w < replaying.size(); ++w) replaying[w] = wave_size(w * side_by_side);
  std::atomic<bool> failed{false};
  std::vector<char> stopped(sources.size(), 0);  // by another node's failure: not the error to return
  auto fail = [&](size_t i, Status s) {
    stopped[i] = failed.exchange(true) && s.code() == StatusCode::kCancelled;
    results[i] = std::move(s);
  };
  auto replay_one = [&](size_t i) {
    const uint16_t node = sources[i];
    const NodeIncrements& inc = chain[node];
    const bool restored = plan.restored[node];
    std::vector<std::string> groups;
    for (const CacheGroup& g : inc.base.groups) {  // a peer is read for its ATOMIC copies only
      if (group_wanted(o, g.name) && (restored || g.mode == CacheMode::kAtomic)) groups.push_back(g.name);
    }
    NodeWal wal{node, inc.base.node_id, inc.base.cluster_id, inc.segment_paths, inc.segment_bytes};
    // Past the budget, a pass drops its fullest copies for the next pass
    // to read again, and the last pass spills (step 3, "Passes").
    std::vector<RoutedCopy*> copies = plan.routed[node];
    for (RoutedCopy* c : copies) c->newest_first = newest_first;
    const uint64_t wal_bytes = bytes_to_finish(inc, filters[node]);
    const unsigned most = std::max(o.max_passes, 1u);
    for (unsigned pass = 1;; ++pass) {
      DiscardSink discard;
      std::optional<RouteSink> route;
      if (spiller) route.emplace(copies, spiller->gauge(), /*others_ignored=*/!restored || pass > 1);
      ReplaySink& sink = route ? static_cast<ReplaySink&>(*route) : discard;
      std::vector<RoutedCopy*> dropped;
      ReplayOptions ro;  // its callbacks use this pass's sink
      ro.threads = static_cast<unsigned>(std::max<size_t>(1, threads_of(o) / wave_size(i)));
      ro.io = shared_by(o.io, wave_size(i));
      ro.cancel = o.cancel;
      ro.groups = groups;
      ro.newest_first = newest_first;
      // The first node to fail stops the others at their next batch, a
      // dry run's too.
      MemoryGauge* gauge = route ? &spiller->gauge() : nullptr;
      ro.pause_due = [gauge, &failed] { return failed || (gauge && gauge->over_budget()); };
      ro.at_pause = [&]() -> Status {
        if (failed) return Status::cancelled("stopped: another node failed");
        if (!route) return {};
        if (pass < most) route->drop_fullest(gauge->budget_bytes() / 2, dropped);
        return spiller->maybe_spill(node, *route, ro.threads);  // what dropping left over the budget
      };
      if (pass > 1) progress.grow(wal_bytes);
      Status s =
          replay_wal(wal, filters[node], inc.base.groups, sink, ro, progress, pass == 1 ? reports[i] : rereads[i]);
      passes[i] = pass;
      if (!s.ok()) return fail(i, s.with_context("node " + inc.base.node_id));
      if (dropped.empty()) {
        replayed_at[i] = Clock::now();
        const bool last = --replaying[i / side_by_side] == 0;
        if (last) progress.report();  // the wave's replay, done, before its finish is shown
        if (between_passes && !failed) s = between_passes(copies, last, failed);
        if (!s.ok()) fail(i, s);
        return;
      }
      // The copies routed to the end are whole: finished now, so that
      // the next pass has their memory.
      std::vector<RoutedCopy*> gone = dropped;  // sorted: a pass may drop half of thousands of copies
      std::sort(gone.begin(), gone.end(), std::less<>());
      std::erase_if(copies,
                    [&](RoutedCopy* c) { return std::binary_search(gone.begin(), gone.end(), c, std::less<>()); });
      if (between_passes) s = between_passes(copies, /*shown=*/false, failed);
      if (!s.ok()) return fail(i, s);
      copies = std::move(dropped);
    }
  };
  Clock::time_point wave_start = Clock::now();
  report.replay_s = 0;
  WALCUT_RETURN_IF_ERROR(for_each_in_waves(sources.size(), side_by_side, replay_one, [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) {
      if (!results[i].ok() && !stopped[i]) return results[i];
    }
    for (size_t i = from; i < to; ++i) {
      for (RoutedCopy* c : plan.routed[sources[i]]) c->replayed = true;
    }
    const Clock::time_point replayed = *std::max_element(replayed_at.begin() + from, replayed_at.begin() + to);
    report.replay_s += std::chrono::duration<double>(replayed - wave_start).count();
    wave_start = Clock::now();
    return Status{};
  }));
  report.nodes_at_once = static_cast<unsigned>(std::min(side_by_side, sources.size()));
  report.newest_first = newest_first && spiller != nullptr;  // a dry run's sink takes WAL order
  for (size_t i = 0; i < sources.size(); ++i) {
    report.replay_passes = std::max(report.replay_passes, passes[i]);
    const ReplayReport& r = reports[i];
    if (!plan.restored[sources[i]]) {
      report.peer_nodes += 1;
      report.peer_bytes_read += r.bytes_read + rereads[i].bytes_read;
      continue;
    }
    report.reread_bytes += rereads[i].bytes_read;
    report.segments += r.segments;
    report.blocks += r.blocks;
    report.records += r.records;
    report.entries_applied += r.entries_applied;
    report.entries_filtered += r.entries_filtered;
    report.bytes_read += r.bytes_read;
    report.io_engine = r.io_engine;
  }
  return {};
}

// The tasks not finished yet whose copies are all replayed, marked
// finished: they are the caller's to finish.
std::vector<size_t> take_ready(Plan& plan) {
  std::vector<size_t> ready;
  for (size_t i = 0; i < plan.tasks.size(); ++i) {
    const Plan::Task& t = plan.tasks[i];
    if (plan.finished[i]) continue;
    if (std::all_of(t.copies.begin(), t.copies.end(),
                    [](const CopyToFinish& c) { return c.routed == nullptr || c.routed->replayed; })) {
      ready.push_back(i);
      plan.finished[i] = true;
    }
  }
  return ready;
}

// Finishes the tasks `ready` (take_ready), a bounded number at a time:
// each task holds its copies' files and entries only while it runs. With
// a gauge, the buckets it frees leave the count. With a dest, the files
// written are noted for its publish. Touches no other task. Adds what it
// wrote to `report` under `report_mu`. `shown`: reported on `progress`
// (even with nothing ready), else only counted there (beside a replay,
// whose progress is shown). Stops at the next task once `cancel` or
// `failed` (another node's failure) is set.
Status finish_tasks(Plan& plan, const std::vector<size_t>& ready, MemoryGauge* gauge, RestoreDest* dest,
                    const std::atomic<bool>* cancel, const std::atomic<bool>* failed, ProgressHub& progress, bool shown,
                    std::mutex& report_mu, RestoreReport& report) {
  if (shown) progress.report();
  if (ready.empty()) return {};
  FirstError error;
  std::atomic<uint64_t> files{0}, repaired{0};
  std::mutex ahead_mu;
  std::vector<char> started(ready.size(), 0);  // under ahead_mu
  tbb::parallel_for(size_t{0}, ready.size(), [&](size_t k) {
    if (cancel && *cancel) return error.set(Status::cancelled("restore cancelled"));
    if (failed && *failed) return error.set(Status::cancelled("stopped: another node failed"));
    Plan::Task& t = plan.tasks[ready[k]];
    // This task's spilled slices read at once, and the next one's while
    // this one runs (parallel_for hands a thread neighbouring tasks),
    // unless that one has started: its thread drops its slices as it
    // reads them.
    {
      std::lock_guard<std::mutex> lock(ahead_mu);
      started[k] = true;
    }
    prefetch_spilled(t.copies);
    if (k + 1 < ready.size()) {
      std::lock_guard<std::mutex> lock(ahead_mu);
      if (!started[k + 1]) prefetch_spilled(plan.tasks[ready[k + 1]].copies);
    }
    int64_t held = 0;
    for (const CopyToFinish& c : t.copies) held += c.routed ? static_cast<int64_t>(c.routed->bucket.bytes()) : 0;
    Result<FinishReport> r = finish_partition(t.group->id, t.partition, t.group->mode == CacheMode::kAtomic, t.copies);
    if (gauge) gauge->add(-held);
    if (!r.ok()) return error.set(r.status());
    if (dest) {
      for (const WrittenFile& f : r->files) dest->note_written(f.path, f.written);
    }
    files += r->files_written;
    repaired += r->atomic_repaired;
    progress.applied(r->entries_written);
    if (shown) {
      progress.read(t.bytes(), plan.bases[t.copies.front().node_index].node_id);
    } else {
      progress.count(t.bytes());
    }
  });
  {
    std::lock_guard<std::mutex> lock(report_mu);
    report.partition_files += files;
    report.atomic_repaired += repaired;
    for (size_t i : ready) report.partition_bytes += plan.tasks[i].bytes();
  }
  if (shown) progress.report();
  return error.get();
}

// Finishes every partition not finished yet whose copies are all
// replayed. Not beside another call (replay_sources' passes use
// finish_tasks under a lock).
Status finish_ready(Plan& plan, MemoryGauge* gauge, RestoreDest* dest, const std::atomic<bool>* cancel,
                    ProgressHub& progress, RestoreReport& report) {
  std::mutex report_mu;
  return finish_tasks(plan, take_ready(plan), gauge, dest, cancel, nullptr, progress, /*shown=*/true, report_mu,
                      report);
}

// The bytes the finish reads: every task's files and those no task reads.
uint64_t finish_bytes(const Plan& plan) {
  uint64_t bytes = 0;
  for (const Plan::Task& task : plan.tasks) bytes += task.bytes();
  for (const ManifestEntry& f : plan.unread) bytes += f.bytes;
  return bytes;
}

// The groups a restored node declares: those restored, so no other reads as empty.
std::vector<CacheGroup> restored_groups(const RestoreOptions& o, const SnapshotMeta& b) {
  std::vector<CacheGroup> out;
  for (const CacheGroup& g : b.groups) {
    if (group_wanted(o, g.name)) out.push_back(g);
  }
  return out;
}

// A restored node's directory: its groups' directories and node.meta.
Status write_node_dirs(const std::string& staging, const RestoreOptions& o, const SnapshotMeta& b) {
  Result<std::string> node_dir = path_under(staging, b.node_id);
  if (!node_dir.ok()) return node_dir.status();
  const std::string& dir = node_dir.value();
  WALCUT_RETURN_IF_ERROR(make_directories(dir + "/wal"));
  for (const CacheGroup& g : restored_groups(o, b)) WALCUT_RETURN_IF_ERROR(make_directories(dir + "/db/" + g.name));
  return {};
}

Status write_node_meta_of(const std::string& staging, const RestoreOptions& o, const SnapshotMeta& b) {
  NodeMeta nm;
  nm.cluster_id = b.cluster_id;
  nm.node_index = b.node_index;
  nm.node_id = b.node_id;
  nm.baseline = b.baseline;
  nm.groups = restored_groups(o, b);
  nm.topology_version = b.topology_version;
  nm.checkpoint_id = 1;  // the restored state is a checkpoint; the WAL starts empty
  return write_node_meta(staging + "/" + b.node_id, nm);
}

// A hash (XXH3, 64 bits) of the metadata files the restore reads, the
// base's and each increment's up to the one restored, in order: each
// lists its files with their sizes and checksums, so a snapshot taken
// again at the same path is another restore, not one already done. Not a
// CRC32C: each file ends with its own, and the CRC32C of a file and its
// CRC is the same for every file.
Result<uint64_t> snapshot_fingerprint(const RestoreOptions& o) {
  uint64_t hash = 0;
  for (uint64_t k = 0; k <= o.increment; ++k) {
    const std::string dir = k == 0 ? o.snapshot_dir : increment_dir(o.snapshot_dir, k);
    Result<std::vector<std::string>> names = list_meta_files(dir);
    if (!names.ok()) return names.status();
    for (const std::string& name : names.value()) {
      Result<std::string> path = path_under(dir, name);  // not a link out of the snapshot
      if (!path.ok()) return path.status();
      Result<Bytes> bytes = read_file_bytes(path.value());
      if (!bytes.ok()) return bytes.status();
      hash = XXH3_64bits_withSeed(name.data(), name.size(), hash);
      hash = XXH3_64bits_withSeed(bytes->data(), bytes->size(), hash);
    }
  }
  return hash;
}

// The identity RESTORED begins with; `modes`: the tree's (RestoreDest::modes).
Result<std::string> restore_stamp(const RestoreOptions& o, FileModes modes) {
  Result<uint64_t> fingerprint = snapshot_fingerprint(o);
  if (!fingerprint.ok()) return fingerprint.status();
  std::error_code ec;
  std::string snap = fs::weakly_canonical(o.snapshot_dir, ec).string();
  char source[24];
  std::snprintf(source, sizeof source, "%016llx", static_cast<unsigned long long>(fingerprint.value()));
  char modes_line[40];
  std::snprintf(modes_line, sizeof modes_line, "%04o/%04o", unsigned(modes.dir), unsigned(modes.file));
  std::string s = "snapshot=" + snap + "\nincrement=" + std::to_string(o.increment) + "\nnode=" + o.node.value_or("*") +
                  "\ngroups=";
  std::set<std::string> groups(o.groups.begin(), o.groups.end());  // --groups b,a is --groups a,b
  for (const std::string& g : groups) s += g + ",";
  return s + "\nmodes=" + modes_line + "\nsource=" + source + "\n";
}

// Reads the snapshot's metadata and checks what the options ask of it.
Result<std::vector<SnapshotMeta>> read_bases(const RestoreOptions& o) {
  Result<std::vector<SnapshotMeta>> metas = read_snapshot_metas(o.snapshot_dir);
  if (!metas.ok()) return metas.status();
  if (o.node && std::none_of(metas->begin(), metas->end(), [&](const SnapshotMeta& m) { return m.node_id == *o.node; })) {
    return Status::invalid_argument("--node " + *o.node + ": no such node in " + o.snapshot_dir);
  }
  Status groups = check_group_names(o.groups, metas->front().groups, o.snapshot_dir);
  WALCUT_RETURN_IF_ERROR(groups.with_context("--groups"));
  return metas;
}

// The full snapshot's metadata, with what the options ask of the snapshot
// (its node, groups and increment) checked before anything is created, so
// that a usage error leaves nothing behind.
Result<std::vector<SnapshotMeta>> read_checked_bases(const RestoreOptions& o) {
  Result<std::vector<SnapshotMeta>> bases = read_bases(o);
  if (!bases.ok()) return bases.status();
  if (o.increment > 0) WALCUT_RETURN_IF_ERROR(check_increment_count(o.snapshot_dir, o.increment));
  return bases;
}

// What the verify phase establishes: the plan, each node's increments and
// the replay filters of the nodes replayed.
struct Verified {
  Plan plan;
  std::vector<NodeIncrements> chain;  // by node index; empty for increment 0
  std::vector<ReplayFilter> filters;  // by node index, for the source nodes
};

// The snapshot's metadata, the increment chain, the plan (files written
// under `staging`; empty: none), the manifests' listings and the cut records.
Result<Verified> verify(const RestoreOptions& o, std::vector<SnapshotMeta> bases, const std::string& staging) {
  ProgressHub(o.progress, "verify", 0).report();
  Verified v;
  if (o.increment > 0) {
    Result<std::vector<NodeIncrements>> c = read_increment_chain(o.snapshot_dir, bases, o.increment);
    if (!c.ok()) return c.status();
    v.chain.resize(bases.size());
    for (NodeIncrements& n : c.value()) {
      const uint16_t i = n.base.node_index;
      v.chain[i] = std::move(n);
    }
  }
  Result<Plan> planned = make_plan(o, std::move(bases), staging, o.increment > 0);
  if (!planned.ok()) return planned.status();
  v.plan = std::move(planned).value();
  WALCUT_RETURN_IF_ERROR(check_listed(v.plan));
  if (o.increment > 0) {
    Result<std::vector<ReplayFilter>> loaded = load_filters(o, v.plan, v.chain);
    if (!loaded.ok()) return loaded.status();
    v.filters = std::move(loaded).value();
  }
  return v;
}

// The snapshot files the finish will read, asked of the kernel while the
// replay runs: a cold restore would otherwise wait for each small file in
// turn. A thread of its own goes through them (an open and a
// posix_fadvise each, no read) and stops when the returned thread is
// destroyed. Only when they take at most half the memory budget: the page
// cache they fill counts against a cgroup's memory limit too. And only
// when the page cache lacks one of 16 files spread over them: the hints
// of a warm snapshot do nothing, and cost four system calls a file (on
// the test VM 3-6% of a warm restore's replay, on the other core).
std::jthread read_finish_inputs_ahead(const Plan& plan, uint64_t budget) {
  if (finish_bytes(plan) > budget / 2) return {};
  std::vector<std::string> paths;
  for (const Plan::Task& t : plan.tasks) {
    for (const CopyToFinish& c : t.copies) paths.push_back(c.base_path);
  }
  return std::jthread([paths = std::move(paths)](std::stop_token stop) {
    constexpr size_t kSample = 16;
    bool warm = true;
    for (size_t i = 0; i < kSample && i < paths.size() && warm; ++i) {
      warm = first_byte_cached(paths[i * paths.size() / std::min(kSample, paths.size())]);
    }
    if (warm) return;
    for (const std::string& p : paths) {
      if (stop.stop_requested()) return;
      advise_will_need(p);
    }
  });
}

// Finishes every partition of the plan left (finish_partition() writes
// nothing for a copy without an out_path: a dry run's), then checks the
// files no task reads.
Status finish_partitions(const RestoreOptions& o, Plan& plan, MemoryGauge* gauge, RestoreDest* dest,
                         ProgressHub& progress, RestoreReport& report) {
  WALCUT_RETURN_IF_ERROR(finish_ready(plan, gauge, dest, o.cancel, progress, report));
  uint64_t bytes = 0;
  for (const ManifestEntry& f : plan.unread) bytes += f.bytes;
  WALCUT_RETURN_IF_ERROR(check_unread(o, plan.unread, progress));
  progress.report();
  report.partition_bytes += bytes;
  return {};
}

// What the restore would write, counted from the plan.
void count_plan(const RestoreOptions& o, const Plan& plan, RestoreReport& report) {
  for (const SnapshotMeta& b : plan.bases) report.nodes += plan.restored[b.node_index];
  for (const CacheGroup& g : plan.bases.front().groups) report.groups += group_wanted(o, g.name);
  for (const Plan::Task& t : plan.tasks) {
    bool written = false;
    for (const CopyToFinish& c : t.copies) {
      if (plan.restored[c.node_index]) {
        ++report.partition_files;
        written = true;
      }
    }
    report.partitions += written;
  }
}

// --dry-run: every read and check of the restore, nothing written; a dest
// the restore would refuse is refused.
Result<RestoreReport> dry_run(const RestoreOptions& o, std::vector<SnapshotMeta> bases, RestoreReport& report) {
  report.dry_run = true;
  Result<FileModes> modes = modes_no_wider_than(o.snapshot_dir);  // what the restore would give the tree
  if (!modes.ok()) return modes.status();
  Result<std::string> stamp = restore_stamp(o, modes.value());
  if (!stamp.ok()) return stamp.status();
  Result<bool> done = RestoreDest::check(o.dest, o.snapshot_dir, stamp.value(), modes.value());
  if (!done.ok()) return done.status();
  report.already_restored = done.value();
  auto t = Clock::now();
  Result<Verified> verified = verify(o, std::move(bases), "");
  if (!verified.ok()) return verified.status();
  Verified& v = verified.value();
  report.verify_s = since(t);
  if (o.increment > 0) WALCUT_RETURN_IF_ERROR(replay_sources(o, v.plan, v.chain, v.filters, nullptr, {}, report));
  t = Clock::now();
  ProgressHub progress(o.progress, "finish", finish_bytes(v.plan));
  WALCUT_RETURN_IF_ERROR(finish_partitions(o, v.plan, nullptr, nullptr, progress, report));  // writes none: no copy has an out_path
  count_plan(o, v.plan, report);
  report.finish_s = since(t);
  return report;
}

// The restore, with the report begun.
Result<RestoreReport> restore(const RestoreOptions& options, std::vector<SnapshotMeta> bases, RestoreReport& report) {
  // The buckets' chunks go back to a pool while the restore runs
  // (replay/entry_chunks.h), and to malloc when it ends: this guard is
  // destroyed after the plan that holds the buckets.
  struct ReleasePooledChunks {
    ~ReleasePooledChunks() { ChunkPool::shared().release_free(); }
  } release_pooled_chunks;
  Result<std::unique_ptr<RestoreDest>> opened = RestoreDest::open(options.dest, options.snapshot_dir, options.wait);
  if (!opened.ok()) return opened.status();
  RestoreDest& dest = **opened;
  Result<std::string> stamped = restore_stamp(options, dest.modes());
  if (!stamped.ok()) return stamped.status();
  const std::string stamp = std::move(stamped).value();
  Result<bool> done = dest.holds(stamp);
  if (!done.ok()) return done.status();
  if (done.value()) {
    report.already_restored = true;  // a rerun after the rename: nothing to do
    return report;
  }

  auto t = Clock::now();
  Result<std::string> staged = dest.stage();
  if (!staged.ok()) return staged.status();
  const std::string& staging = staged.value();
  const std::string spill_dir = staging + "/.spill";
  std::error_code ec;
  WALCUT_RETURN_IF_ERROR(make_directories(spill_dir));
  Result<Verified> verified = verify(options, std::move(bases), staging);
  if (!verified.ok()) return verified.status();
  Verified& v = verified.value();
  Plan& plan = v.plan;
  report.verify_s = since(t);
  give_back_free_memory();  // before the buckets fill: the verify's freed buffers

  for (const SnapshotMeta& b : plan.bases) {
    if (plan.restored[b.node_index]) WALCUT_RETURN_IF_ERROR(write_node_dirs(staging, options, b));
  }

  // Replay, finishing each partition as soon as its copies are replayed
  // (docs/restore.md, step 4). The replay's time is its nodes' (waves
  // from start to their last node's end, replay_sources); the rest to the
  // end of the finish is the finish's.
  t = Clock::now();
  report.memory_limit = budget_of(options);
  MemoryGauge gauge(report.memory_limit);
  // The buckets' chunks are huge pages (replay/entry_chunks.h) only far
  // from the budget: the chunks' unused ends are resident with them.
  const bool huge_pages = far_from_budget(nodes_side_by_side(options, plan, v.chain), v.chain, report.memory_limit);
  for (const std::unique_ptr<RoutedCopy>& c : plan.copies) c->bucket.use_huge_pages(huge_pages);
  if (output_fits_page_cache(plan, v.chain, report.memory_limit)) {
    for (Plan::Task& t : plan.tasks) {
      for (CopyToFinish& c : t.copies) c.write = PartitionWrite::kCreateCached;
    }
    dest.start_writeback(kWritebackStep);
  }
  Spiller spiller(spill_dir, gauge);
  const std::jthread ahead = read_finish_inputs_ahead(plan, report.memory_limit);
  ProgressHub finish_progress(options.progress, "finish", finish_bytes(plan));
  std::mutex plan_mu, report_mu;  // nodes side by side finish beside each other's replay
  auto finish_whole = [&](std::span<RoutedCopy* const> whole, bool shown, const std::atomic<bool>& failed) {
    std::vector<size_t> ready;
    {
      std::lock_guard<std::mutex> lock(plan_mu);
      for (RoutedCopy* c : whole) c->replayed = true;
      ready = take_ready(plan);
    }
    return finish_tasks(plan, ready, &gauge, &dest, options.cancel, &failed, finish_progress, shown, report_mu, report);
  };
  if (options.increment > 0) {
    WALCUT_RETURN_IF_ERROR(replay_sources(options, plan, v.chain, v.filters, &spiller, finish_whole, report));
  }
  report.routed_bytes_peak = gauge.peak_bytes();
  report.spill_files = spiller.files();
  report.spilled_bytes = spiller.bytes();

  WALCUT_RETURN_IF_ERROR(finish_partitions(options, plan, &gauge, &dest, finish_progress, report));
  const uint64_t written = report.partition_files;
  count_plan(options, plan, report);
  report.partition_files = written;
  for (const SnapshotMeta& b : plan.bases) {
    if (plan.restored[b.node_index]) WALCUT_RETURN_IF_ERROR(write_node_meta_of(staging, options, b));
  }
  // Done with: the publish lists the tree beside them otherwise (about 0.4
  // KiB a partition file).
  std::vector<Plan::Task>().swap(plan.tasks);
  std::vector<std::unique_ptr<RoutedCopy>>().swap(plan.copies);
  std::vector<std::vector<RoutedCopy*>>().swap(plan.routed);
  spiller.drain_removals();
  fs::remove_all(spill_dir, ec);
  if (ec) return Status::from_error_code("remove " + spill_dir, ec);
  report.finish_s = since(t) - report.replay_s;

  if (options.cancel && *options.cancel) return Status::cancelled("restore cancelled");
  t = Clock::now();
  WALCUT_RETURN_IF_ERROR(dest.publish(stamp, options.progress));
  report.publish_s = since(t);
  return report;
}

}  // namespace

Result<RestoreReport> restore_snapshot(const RestoreOptions& options) {
  const auto start = Clock::now();
  // From here: verifying an existing dest reads in parallel too.
  return with_threads(options.threads, [&]() -> Result<RestoreReport> {
    Result<std::vector<SnapshotMeta>> bases = read_checked_bases(options);
    if (!bases.ok()) return bases.status();
    // --groups naming every group is the restore of all, stamped as one:
    // a rerun spelled the other way finds its tree.
    RestoreOptions o = options;
    const std::set<std::string> named(o.groups.begin(), o.groups.end());
    if (!named.empty() && std::all_of(bases->front().groups.begin(), bases->front().groups.end(),
                                      [&](const CacheGroup& g) { return named.count(g.name) > 0; })) {
      o.groups.clear();
    }
    RestoreReport report;
    report.snapshot_dir = o.snapshot_dir;
    report.increment = o.increment;
    report.dest = o.dest;
    Result<RestoreReport> r =
        o.dry_run ? dry_run(o, std::move(bases).value(), report) : restore(o, std::move(bases).value(), report);
    if (r.ok()) r->total_s = since(start);
    return r;
  });
}

}  // namespace walcut
