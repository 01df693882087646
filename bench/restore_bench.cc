// End-to-end restore throughput, per data shape (bench/shapes.h: small,
// fat, hot, large) and codec: restore_snapshot() (replay/restore.h) cold
// and warm on 1..nproc threads, against the yardsticks it is judged by — a
// plain O_DIRECT read of the same files (what the disk gives), a
// deliberately naive one-thread replayer (bench/naive_replayer.h) and
// RocksDB's recovery of the same entries from its WAL
// (bench/rocksdb_peer.h) — plus probes that split the replay into its
// stages, the walcut CLI as a child process for the peak RSS of a restore,
// and for `large` a restore under a cgroup memory limit compared byte for
// byte with the unconstrained one (bench/child_restore.h). Targets per
// shape: targets_for() below. Results and how to read them:
// docs/benchmarks.md; the procedure: docs/restore.md.
#include <fcntl.h>
#include <oneapi/tbb/global_control.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_io.h"
#include "bench/child_restore.h"
#include "bench/naive_replayer.h"
#include "bench/rocksdb_peer.h"
#include "bench/shapes.h"
#include "cut/increment.h"
#include "engine/partition.h"
#include "engine/snapshot.h"
#include "io/block_reader.h"
#include "io/chunk_reader.h"
#include "replay/memory_limit.h"
#include "replay/restore.h"
#include "tools/cli_util.h"
#include "tools/sim/simulator.h"

namespace walcut {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Informational ratios, as before shapes (reported per shape in "ratios").
constexpr double kTargetColdOverRaw = 0.8;     // cold replay / plain O_DIRECT read of the segments, MB/s on disk
constexpr double kTargetWarmMbPerCore = 1000;  // MB/s of uncompressed WAL per thread
constexpr double kTargetOverNaive = 10;        // naive seconds / restore seconds
// The targets per shape (targets_for()).
constexpr double kSmallOverRocksdb = 25;              // whole warm restore entries/s / RocksDB recovery entries/s
constexpr double kSmallReplayEntriesPerCore = 2e6;    // replay phase entries/s per thread
constexpr double kSmallColdOverDirectRead = 0.8;      // O_DIRECT read of the inputs s / cold whole restore s
constexpr double kFatWarmMbPerCore = 900;             // replay phase MB/s of uncompressed WAL per thread
constexpr double kRssOverRestored = 1.5;              // peak RSS / restored bytes, when they fit under the limit
constexpr double kLimitedOverUnconstrained = 2;       // restore under the cgroup limit s / unconstrained s
// Exit codes as the walcut CLI's (docs/cli.md); 1 is a missed target under --enforce.
constexpr int kExitTargetMissed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitIoError = 3;

struct Args {
  std::string dir;
  std::vector<std::string> shapes;  // empty: all
  double scale = 1;
  std::string memory_limit_text = "96M";
  std::string cgroup_memory_text = "160M";
  uint32_t repeat = 3;
  std::vector<std::string> codecs = {"none"};
  unsigned threads_max = 0;  // 0: nproc
  std::string json_out;
  std::string cli = WALCUT_CLI;
  bool keep = false;
  bool enforce = false;
  bool probes = true;
  bool rocksdb = true;
};

// What is found out once per run: the CLI, the cgroup, the limits.
struct Env {
  std::string cli;
  bool cli_memory_flag = false;  // `snapshot restore --help` mentions --memory-limit
  std::string cgroup_root;       // empty: no cgroup with the memory controller; cgroup_why says why
  std::string cgroup_why;
  uint64_t memory_limit_bytes = 0;
  std::string memory_limit_text;
  uint64_t cgroup_memory_bytes = 0;
  uint64_t child_rss_floor_bytes = 0;  // peak RSS of the CLI printing its help
  bool rocksdb = false;          // the peer is built and asked for
  std::string rocksdb_why;       // when not
};

std::mutex g_out_mu;

__attribute__((format(printf, 1, 2))) void say(const char* format, ...) {
  std::lock_guard<std::mutex> lock(g_out_mu);
  va_list args;
  va_start(args, format);
  std::vprintf(format, args);
  va_end(args);
  std::fflush(stdout);
}

double mib(uint64_t bytes) { return static_cast<double>(bytes) / (1 << 20); }

bool direct_allowed_for(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// ---- the data ----

struct DataSet {
  bench::Shape shape;
  std::string codec;
  std::string name;          // shape/codec
  std::string root;          // DIR/<shape>-<codec>
  std::string snapshot_dir;  // root/snapshots/snp
  uint64_t increments = 0;
  std::vector<std::string> segment_paths;                                    // increments 1..N, every node
  std::vector<std::string> snapshot_paths;                                   // the full snapshot's partition files
  std::vector<std::string> all_paths;                                        // both: a restore's input files
  std::vector<std::pair<uint16_t, std::vector<std::string>>> node_segments;  // per node, in order
  std::vector<SnapshotMeta> bases;
  uint64_t segment_files_bytes = 0;
  uint64_t snapshot_files_bytes = 0;
  nlohmann::json generation;  // from the GENERATED marker
};

// Data on disk is reused only when its marker records the same options.
bool generated_as(const std::string& root, const nlohmann::json& options) {
  std::ifstream in(root + "/GENERATED");
  if (!in) return false;
  try {
    return nlohmann::json::parse(in).at("options") == options;
  } catch (const std::exception&) {
    return false;
  }
}

// Only the snapshot is kept: the simulated cluster's own WAL and the
// history are as large as the increments and not needed here. `removed`
// counts the files deleted with the cluster.
Status generate(const DataSet& d, std::atomic<uint64_t>& removed) {
  std::error_code ec;
  fs::remove_all(d.root, ec);
  sim::Options o = d.shape.options;
  o.out = d.root;
  auto t = Clock::now();
  Result<sim::Report> r = sim::run(o, [&](const std::string& line) { say("  [%s] %s\n", d.name.c_str(), line.c_str()); });
  if (!r.ok()) return r.status();
  const std::uintmax_t n = fs::remove_all(o.out + "/cluster", ec);
  if (n != static_cast<std::uintmax_t>(-1)) removed += n;
  fs::remove(o.out + "/history.jsonl", ec);
  nlohmann::json marker = {{"shape", d.shape.name},
                           {"codec", d.codec},
                           {"options", bench::options_json(d.shape.options)},
                           {"committed", r->committed},
                           {"rolled_back", r->rolled_back},
                           {"atomic_updates", r->atomic_updates},
                           {"cluster_wal_bytes", r->wal_bytes},
                           {"sim_seconds", r->seconds},
                           {"generate_seconds", since(t)}};
  std::ofstream out(d.root + "/GENERATED");
  out << marker.dump(2) << "\n";
  if (!out) return Status::io_error("write " + d.root + "/GENERATED");
  say("  [%s] generated in %.1f s\n", d.name.c_str(), since(t));
  return {};
}

// Whether `dir` is on ext4 without a journal: no /proc/fs/jbd2/<its device>-<n>.
bool ext4_without_journal(const std::string& dir) {
  struct statfs sfs {};
  struct stat st {};
  if (::statfs(dir.c_str(), &sfs) != 0 || static_cast<unsigned long>(sfs.f_type) != 0xEF53) return false;
  if (::stat(dir.c_str(), &st) != 0) return false;
  std::error_code ec;
  const fs::path dev = fs::read_symlink(
      "/sys/dev/block/" + std::to_string(major(st.st_dev)) + ":" + std::to_string(minor(st.st_dev)), ec);
  if (ec) return false;
  const std::string prefix = dev.filename().string() + "-";
  for (const fs::directory_entry& e : fs::directory_iterator("/proc/fs/jbd2", ec)) {
    if (e.path().filename().string().rfind(prefix, 0) == 0) return false;
  }
  return true;
}

// Files deleted in the last minute slow the creation of new ones on ext4
// without a journal (fs/ext4/ialloc.c, recently_deleted(): the inode
// allocator skips each one, a buffer lookup at a time, for 60 s after its
// deletion, 360 s while its inode table block is dirty). A generation
// deletes thousands (its checkpoints replace partition files, and its
// cluster is deleted), and the first restores measured after it paid for
// them: `small`'s finish 0.88 s against 0.2 s. Past this many files
// deleted there, the bench syncs and waits the minute out.
constexpr uint64_t kSettleAfterRemoved = 2000;
constexpr int kSettleSeconds = 61;

void settle_after_deletes(const std::string& dir, uint64_t removed) {
  if (removed < kSettleAfterRemoved || !ext4_without_journal(dir)) return;
  say("waiting %d s: %llu files were just deleted on ext4 without a journal, which slows file creation for a minute\n",
      kSettleSeconds, static_cast<unsigned long long>(removed));
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::syncfs(fd);  // the inode table blocks written: the 60 s window, not the 360 s one
    ::close(fd);
  }
  std::this_thread::sleep_for(std::chrono::seconds(kSettleSeconds));
}

// Generates the data sets that `dir` lacks, up to nproc at once (the
// simulator is one thread each), then lets the file system settle.
Status generate_missing(const std::string& dir, std::vector<DataSet>& sets) {
  std::vector<const DataSet*> missing;
  for (const DataSet& d : sets) {
    if (!generated_as(d.root, bench::options_json(d.shape.options))) missing.push_back(&d);
  }
  if (missing.empty()) return {};
  const size_t workers_n = std::min<size_t>(missing.size(), std::max(1u, std::thread::hardware_concurrency()));
  say("generating %zu data set(s), %zu at once:", missing.size(), workers_n);
  for (const DataSet* d : missing) say(" %s (%llu transactions)", d->name.c_str(),
                                       static_cast<unsigned long long>(d->shape.options.txs));
  say("\n");
  auto start = Clock::now();
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> removed{0};
  std::vector<Status> results(missing.size());
  std::vector<std::thread> workers;
  for (size_t w = 0; w < workers_n; ++w) {
    workers.emplace_back([&] {
      for (size_t i = next++; i < missing.size(); i = next++) results[i] = generate(*missing[i], removed);
    });
  }
  for (std::thread& w : workers) w.join();
  for (const Status& s : results) WALCUT_RETURN_IF_ERROR(s);
  say("generation took %.1f s in all\n", since(start));
  settle_after_deletes(dir, removed);
  return {};
}

Status open_data(DataSet& d) {
  {
    std::ifstream in(d.root + "/GENERATED");
    try {
      d.generation = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      return Status::corruption(d.root + "/GENERATED: " + e.what());
    }
  }
  Result<uint64_t> n = increment_count(d.snapshot_dir);
  if (!n.ok()) return n.status();
  if (n.value() == 0) return Status::not_found(d.snapshot_dir + ": no increments");
  d.increments = n.value();
  Result<std::vector<SnapshotMeta>> bases = read_snapshot_metas(d.snapshot_dir);
  if (!bases.ok()) return bases.status();
  d.bases = std::move(bases).value();
  for (const SnapshotMeta& b : d.bases) {
    for (const ManifestEntry& f : b.files) {
      d.snapshot_paths.push_back(d.snapshot_dir + "/" + f.path);
      d.snapshot_files_bytes += f.bytes;
    }
    std::vector<std::string> paths;
    for (uint64_t k = 1; k <= d.increments; ++k) {
      Result<std::vector<IncrementMeta>> metas = read_increment_metas(d.snapshot_dir, k);
      if (!metas.ok()) return metas.status();
      for (const IncrementMeta& m : metas.value()) {
        if (m.node_index != b.node_index) continue;
        for (const ManifestEntry& f : m.files) {
          paths.push_back(increment_dir(d.snapshot_dir, k) + "/" + f.path);
          d.segment_files_bytes += f.bytes;
        }
      }
    }
    d.segment_paths.insert(d.segment_paths.end(), paths.begin(), paths.end());
    d.node_segments.emplace_back(b.node_index, std::move(paths));
  }
  d.all_paths = d.segment_paths;
  d.all_paths.insert(d.all_paths.end(), d.snapshot_paths.begin(), d.snapshot_paths.end());
  return {};
}

// ---- the configurations ----

enum class Kind {
  kRawRead,
  kRawReadInputs,
  kRestore,
  kCliRestore,
  kCliRestoreLimited,
  kNaive,
  kProbeReader,
  kProbeNullSink,
  kProbeMapSink,
  kRocksdbRecovery
};
const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kRawRead: return "raw_read";
    case Kind::kRawReadInputs: return "raw_read_inputs";
    case Kind::kRestore: return "restore";
    case Kind::kCliRestore: return "cli_restore";
    case Kind::kCliRestoreLimited: return "cli_restore_cgroup";
    case Kind::kNaive: return "naive";
    case Kind::kProbeReader: return "probe_block_reader";
    case Kind::kProbeNullSink: return "probe_replay_null_sink";
    case Kind::kProbeMapSink: return "probe_replay_partition_sink";
    case Kind::kRocksdbRecovery: return "rocksdb_recovery";
  }
  return "?";
}

struct Config {
  std::string name;
  Kind kind;
  bool cold;    // evicted before the run; otherwise pre-read
  bool direct;  // O_DIRECT reads
  unsigned threads = 1;
};

struct Run {
  double seconds = 0;    // wall time of the whole call (CLI: fork to wait4)
  double replay_s = 0;   // the replay part (restore: report.replay_s; probes and naive: all of it)
  RestoreReport report;  // restore rows (CLI: from its --json); probes fill the counters
  bench::NaiveReplayResult naive;
  double apply_s = 0;  // probe_replay_partition_sink: time inside the sink, summed over threads
  uint64_t resident_after_evict_bytes = 0;
  uint64_t restored_bytes = 0;  // restore rows: the partition files written
  // CLI rows:
  bench::ChildRun child;
  bool memory_flag_passed = false;
  uint64_t cgroup_memory_peak_bytes = 0;
  uint64_t cgroup_oom_kills = 0;
  std::optional<std::string> tree_difference;  // limited run: "" equal to the unconstrained tree
  bench::RocksRecovery rocks;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Summary {
  Config config;
  std::vector<Run> runs;
  std::vector<double> values(double Run::*field) const {
    std::vector<double> v;
    for (const Run& r : runs) v.push_back(r.*field);
    return v;
  }
  double best(double Run::*field) const {
    std::vector<double> v = values(field);
    return v.empty() ? 0 : *std::min_element(v.begin(), v.end());
  }
  double med(double Run::*field) const { return median(values(field)); }
};

// A sink that discards: the pipeline's read, decode and filter without apply.
class NullSink final : public ReplaySink {
 public:
  Status apply(const ReplayEntry&) override { return {}; }
};

// The built-in sink's work (walcut::Partition::apply into std::map) with the
// time spent inside it summed, so apply can be told from the rest.
class TimedPartitionSink final : public ReplaySink {
 public:
  explicit TimedPartitionSink(const std::vector<CacheGroup>& groups) {
    for (const CacheGroup& g : groups) {
      for (uint16_t p = 0; p < g.partitions; ++p) parts_.emplace(PartitionId{g.id, p}, Partition{});
    }
  }
  Status apply(const ReplayEntry& e) override {
    auto t = Clock::now();
    auto it = parts_.find(PartitionId{e.entry->group_id, e.entry->partition});
    if (it == parts_.end()) return Status::corruption("no such partition");
    it->second.apply(*e.entry);
    apply_ns_ += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t).count();
    return {};
  }
  double apply_s() const { return static_cast<double>(apply_ns_.load()) / 1e9; }

 private:
  using PartitionId = std::pair<uint32_t, uint16_t>;
  std::map<PartitionId, Partition> parts_;
  std::atomic<int64_t> apply_ns_{0};
};

RestoreOptions restore_options(const DataSet& d, const Config& c) {
  RestoreOptions o;
  o.snapshot_dir = d.snapshot_dir;
  o.increment = d.increments;
  o.threads = c.threads;
  o.io.direct = c.direct;
  o.io.notice = bench::collect_notice;
  return o;
}

void remove_dest(const std::string& dest) {
  std::error_code ec;
  fs::remove_all(dest, ec);
  fs::remove_all(dest + ".staging", ec);
}

// Restored trees are moved aside, not deleted, until the bench ends: on
// ext4 without a journal, the kernel's inode allocator skips each inode
// deleted in the last minute (five while its inode table block is dirty)
// one lookup at a time, so creating 4096 files right after deleting the
// last restore's 4096 made small's finish 2-3x slower than on a file
// system where nothing was just deleted (docs/benchmarks.md). Kept while
// the file system keeps kFreeBytes free; deleted as they go after that.
class RetiredTrees {
 public:
  static constexpr uint64_t kFreeBytes = uint64_t{8} << 30;
  void set_root(const std::string& dir) {
    root_ = dir + "/retired-trees";
    std::error_code ec;
    fs::remove_all(root_, ec);  // left by a run that failed
  }
  void retire(const std::string& dest) {
    std::error_code ec;
    fs::remove_all(dest + ".staging", ec);
    if (!fs::exists(dest, ec)) return;
    struct statvfs v {};
    const bool room = !root_.empty() && ::statvfs(fs::path(dest).parent_path().c_str(), &v) == 0 &&
                      static_cast<uint64_t>(v.f_bavail) * v.f_frsize > kFreeBytes;
    if (room) {
      fs::create_directories(root_, ec);
      if (!ec) fs::rename(dest, root_ + "/" + std::to_string(kept_), ec);
      if (!ec) {
        ++kept_;
        return;
      }
    }
    remove_dest(dest);
    ++deleted_;
  }
  // Deletes the kept trees; says how many there were.
  std::string finish() {
    std::error_code ec;
    if (!root_.empty()) fs::remove_all(root_, ec);
    return std::to_string(kept_) + " restored trees kept until the end, " + std::to_string(deleted_) +
           " deleted as they went (less than " + std::to_string(kFreeBytes >> 30) + " GiB free)";
  }

 private:
  std::string root_;
  uint64_t kept_ = 0, deleted_ = 0;
};
RetiredTrees retired_trees;

// ---- one data set's results ----

struct DataResult {
  DataSet data;
  std::vector<Summary> summaries;
  // From the naive replayer's count (the blocks up to each node's FINISH).
  uint64_t wal_block_bytes = 0;
  uint64_t wal_raw_bytes = 0;
  uint64_t entries_applied = 0;  // restore's count
  uint64_t restored_bytes = 0;   // restore's partition files
  uint64_t resident_after_evict_bytes_max = 0;
  std::string reference_dest;    // the unconstrained CLI restore's tree, kept for the limited one
  std::string limited_skipped;   // why there is no limited run (large only)
  std::optional<bench::RocksPeerData> rocks;
  std::string rocks_skipped;
  nlohmann::json ratios;
  nlohmann::json targets = nlohmann::json::array();
  const Summary* find(Kind k, bool cold, unsigned threads) const {
    for (const Summary& s : summaries) {
      if (s.config.kind == k && s.config.cold == cold && s.config.threads == threads) return &s;
    }
    return nullptr;
  }
  const Summary* find_kind(Kind k) const {
    for (const Summary& s : summaries) {
      if (s.config.kind == k) return &s;
    }
    return nullptr;
  }
  const Summary* find_raw(bool direct) const {
    for (const Summary& s : summaries) {
      if (s.config.kind == Kind::kRawRead && s.config.direct == direct) return &s;
    }
    return nullptr;
  }
};

std::vector<std::string> cli_restore_argv(const Env& env, const DataSet& d, const Config& c, const std::string& dest) {
  return {env.cli, "snapshot", "restore", d.snapshot_dir, "--increment", std::to_string(d.increments), "--dest", dest,
          "--threads", std::to_string(c.threads), "--json"};
}

// The CLI's --json report into run.report.
Status parse_cli_report(const std::string& text, Run& run) {
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    RestoreReport& x = run.report;
    x.dest = j.at("dest");
    x.already_restored = j.at("already_restored");
    x.nodes = j.at("nodes");
    x.partition_files = j.at("partition_files");
    x.segments = j.at("segments");
    x.blocks = j.at("blocks");
    x.records = j.at("records");
    x.entries_applied = j.at("entries_applied");
    x.entries_filtered = j.at("entries_filtered");
    x.atomic_repaired = j.at("atomic_repaired");
    x.bytes_read = j.at("bytes_read");
    x.peer_nodes = j.at("peer_nodes");
    x.peer_bytes_read = j.at("peer_bytes_read");
    x.io_engine = j.at("io_engine");
    const nlohmann::json& s = j.at("seconds");
    x.verify_s = s.at("verify");
    x.replay_s = s.at("replay");
    x.finish_s = s.at("finish");
    x.publish_s = s.at("publish");
    x.total_s = s.at("total");
    x.memory_limit = j.at("memory_limit");
    x.routed_bytes_peak = j.at("routed_bytes_peak");
    x.spill_files = j.at("spill_files");
    x.spilled_bytes = j.at("spilled_bytes");
  } catch (const std::exception& e) {
    return Status::corruption(std::string("the CLI's --json report: ") + e.what());
  }
  run.replay_s = run.report.replay_s;
  return {};
}

// The unconstrained CLI restore: peak RSS. Its tree is kept as the
// reference when a limited run follows.
Status run_cli(const Env& env, DataResult& dr, const Config& c, const std::string& dest, const std::string& scratch,
               Run& run) {
  const DataSet& d = dr.data;
  Result<bench::ChildRun> child = bench::run_child(cli_restore_argv(env, d, c, dest), scratch, nullptr);
  if (!child.ok()) return child.status();
  run.child = std::move(child).value();
  run.seconds = run.child.wall_s;
  if (!run.child.exited || run.child.exit_code != 0) {
    return Status::io_error("walcut snapshot restore " + run.child.describe() + ": " + run.child.stderr_text);
  }
  WALCUT_RETURN_IF_ERROR(parse_cli_report(run.child.stdout_text, run));
  if (dr.reference_dest.empty()) {
    retired_trees.retire(dest);
    return {};
  }
  retired_trees.retire(dr.reference_dest);
  std::error_code ec;
  fs::rename(dest, dr.reference_dest, ec);
  if (ec) return Status::io_error("rename " + dest + " to " + dr.reference_dest + ": " + ec.message());
  return {};
}

// The CLI restore inside a cgroup with memory.max: how it ended, and its
// tree against the unconstrained restore's.
Status run_cli_limited(const Env& env, DataResult& dr, const Config& c, const std::string& dest,
                       const std::string& scratch, Run& run) {
  const DataSet& d = dr.data;
  Result<std::unique_ptr<bench::MemoryCgroup>> cg = bench::MemoryCgroup::create(
      env.cgroup_root, "walcut-bench-" + std::to_string(::getpid()), env.cgroup_memory_bytes);
  if (!cg.ok()) return cg.status();
  std::vector<std::string> argv = cli_restore_argv(env, d, c, dest);
  if (env.cli_memory_flag) {
    argv.push_back("--memory-limit");
    argv.push_back(env.memory_limit_text);
    run.memory_flag_passed = true;
  }
  Result<bench::ChildRun> child = bench::run_child(argv, scratch, cg->get());
  if (!child.ok()) return child.status();
  run.child = std::move(child).value();
  run.seconds = run.child.wall_s;
  run.cgroup_memory_peak_bytes = (*cg)->memory_peak_bytes();
  run.cgroup_oom_kills = (*cg)->oom_kills();
  cg->reset();  // rmdir, now that the child is gone
  if (run.child.exited && run.child.exit_code == 0) {
    WALCUT_RETURN_IF_ERROR(parse_cli_report(run.child.stdout_text, run));
    Result<std::string> diff = bench::first_tree_difference(dr.reference_dest, dest, "RESTORED");
    if (!diff.ok()) return diff.status();
    run.tree_difference = diff.value();
  }
  retired_trees.retire(dest);
  return {};
}

Status run_probe_reader(const DataSet& d, const Config& c, Run& run) {
  for (const auto& [node, paths] : d.node_segments) {
    BlockReaderOptions ro;
    ro.io.direct = c.direct;
    ro.io.notice = bench::collect_notice;
    ro.mode = TailMode::kStrict;
    Result<std::unique_ptr<BlockReader>> reader = BlockReader::open(paths, ro);
    if (!reader.ok()) return reader.status();
    Block b;
    for (;;) {
      Result<bool> more = (*reader)->next(b);
      if (!more.ok()) return more.status();
      if (!more.value()) break;
    }
    run.report.segments += (*reader)->counters().segments;
    run.report.blocks += (*reader)->counters().blocks;
    run.report.bytes_read += (*reader)->counters().block_bytes;
    run.report.io_engine = (*reader)->engine_name();
  }
  return {};
}

Status run_probe_sink(const DataSet& d, const Config& c, Run& run) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, c.threads);
  ReplayOptions o;
  o.threads = c.threads;
  o.io.direct = c.direct;
  o.io.notice = bench::collect_notice;
  // Each node's replay_node() alone: not the sink's set-up, nor freeing its maps.
  for (const SnapshotMeta& b : d.bases) {
    NullSink null_sink;
    TimedPartitionSink map_sink(b.groups);
    ReplaySink& sink = c.kind == Kind::kProbeNullSink ? static_cast<ReplaySink&>(null_sink) : map_sink;
    auto node_start = Clock::now();
    ReplayReport rr;
    WALCUT_RETURN_IF_ERROR(replay_node(d.snapshot_dir, d.increments, b.node_index, sink, o, rr));
    run.report.segments += rr.segments;
    run.report.blocks += rr.blocks;
    run.report.records += rr.records;
    run.report.entries_applied += rr.entries_applied;
    run.report.entries_filtered += rr.entries_filtered;
    run.report.bytes_read += rr.bytes_read;
    run.report.io_engine = rr.io_engine;
    run.seconds += since(node_start);
    run.apply_s += map_sink.apply_s();
  }
  run.replay_s = run.seconds;
  return {};
}

Result<Run> run_once(const Env& env, DataResult& dr, const Config& c, const std::string& dest,
                     const std::string& scratch) {
  const DataSet& d = dr.data;
  Run run;
  // A restore reads the full snapshot's partition files as well as the segments.
  const bool every_input = c.kind == Kind::kRestore || c.kind == Kind::kCliRestore ||
                           c.kind == Kind::kCliRestoreLimited || c.kind == Kind::kRawReadInputs;
  const std::vector<std::string>& inputs = every_input ? d.all_paths : d.segment_paths;
  if (c.kind == Kind::kRocksdbRecovery) {
    // time_rocksdb_recovery warms its own copy of the DB.
  } else if (c.cold) {
    Result<uint64_t> resident = bench::evict_from_page_cache(inputs);
    if (!resident.ok()) return resident.status();
    run.resident_after_evict_bytes = resident.value();
  } else {
    Result<bench::PlainRead> pre = bench::read_files(inputs, false);
    if (!pre.ok()) return pre.status();
  }
  auto t = Clock::now();
  switch (c.kind) {
    case Kind::kRawRead:
    case Kind::kRawReadInputs: {
      Result<bench::PlainRead> bytes = bench::read_files(inputs, c.direct);
      if (!bytes.ok()) return bytes.status();
      run.seconds = run.replay_s = since(t);
      break;
    }
    case Kind::kRestore: {
      RestoreOptions o = restore_options(d, c);
      o.dest = dest;
      Result<RestoreReport> r = restore_snapshot(o);
      run.seconds = since(t);
      if (!r.ok()) return r.status();
      run.report = r.value();
      run.replay_s = run.report.replay_s;
      Result<uint64_t> restored = bench::restored_partition_bytes(dest);  // not timed
      if (!restored.ok()) return restored.status();
      run.restored_bytes = restored.value();
      retired_trees.retire(dest);  // not timed: every run restores into a fresh directory
      break;
    }
    case Kind::kCliRestore: WALCUT_RETURN_IF_ERROR(run_cli(env, dr, c, dest, scratch, run)); break;
    case Kind::kCliRestoreLimited: WALCUT_RETURN_IF_ERROR(run_cli_limited(env, dr, c, dest, scratch, run)); break;
    case Kind::kNaive: {
      Result<bench::NaiveReplayResult> r = bench::naive_replay(d.snapshot_dir, d.increments);
      if (!r.ok()) return r.status();
      run.naive = r.value();
      run.seconds = run.replay_s = run.naive.seconds;  // without freeing the maps
      break;
    }
    case Kind::kProbeReader:
      WALCUT_RETURN_IF_ERROR(run_probe_reader(d, c, run));
      run.seconds = run.replay_s = since(t);
      break;
    case Kind::kProbeNullSink:
    case Kind::kProbeMapSink: WALCUT_RETURN_IF_ERROR(run_probe_sink(d, c, run)); break;
    case Kind::kRocksdbRecovery: {
      Result<bench::RocksRecovery> r = bench::time_rocksdb_recovery(*dr.rocks, scratch + "/rocksdb-recovering");
      if (!r.ok()) return r.status();
      run.rocks = r.value();
      run.seconds = run.replay_s = run.rocks.open_s;
      break;
    }
  }
  return run;
}

// ---- the report ----

// How fast this machine hands out memory never touched before, against
// memory touched once: a restore writes its restored data into fresh
// memory, and in a VM whose host backs guest memory lazily (and takes freed
// memory back) the first write of each page costs far more than the next.
struct FirstTouch {
  uint64_t bytes = 0;
  double first_gb_per_s = 0;  // one write per 4 KiB page of a fresh MADV_HUGEPAGE mapping
  double again_gb_per_s = 0;  // memset of the same bytes right after
};

FirstTouch measure_first_touch(uint64_t bytes) {
  FirstTouch f;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return f;
  ::madvise(p, bytes, MADV_HUGEPAGE);
  auto* b = static_cast<volatile char*>(p);
  auto t = Clock::now();
  for (uint64_t i = 0; i < bytes; i += 4096) b[i] = 1;
  double first = since(t);
  t = Clock::now();
  std::memset(p, 2, bytes);
  double again = since(t);
  ::munmap(p, bytes);
  f.bytes = bytes;
  f.first_gb_per_s = static_cast<double>(bytes) / first / 1e9;
  f.again_gb_per_s = static_cast<double>(bytes) / again / 1e9;
  return f;
}

constexpr int kCreateProbeFiles = 2048;

// How fast the file system under the bench creates small files: a
// restore creates one per partition copy (4096 for `small`). ext4 without
// a journal skips every inode freed in the last minute (five while its
// inode table block is dirty) one lookup at a time, so a run started
// right after something deleted tens of thousands of files finishes its
// restores 2-5x slower; this shows it. The files are retired (kept until
// the end), not deleted, so the probe does not cause what it measures.
// 0: not measured (a file could not be created).
double measure_file_creation(const std::string& dir, int files) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return 0;
  auto t = Clock::now();
  int made = 0;
  for (; made < files; ++made) {
    const std::string path = dir + "/f" + std::to_string(made);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) break;
    ::close(fd);
  }
  const double us = made == files ? since(t) * 1e6 / files : 0;
  retired_trees.retire(dir);
  return us;
}

constexpr uint64_t kPageCacheProbeBytes = 64 << 20;

// How fast the page cache takes a new file's bytes (1 MiB writes into a
// new file, no sync): a restore writes its partition files through it, and
// its new pages are fresh memory too, though not always as slow to touch
// as an anonymous mapping's (a page the kernel freed a moment ago is still
// backed by the host). The file is retired, not deleted. 0: not measured.
double measure_page_cache_write(const std::string& dir, uint64_t bytes) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return 0;
  const int fd = ::open((dir + "/f").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return 0;
  std::vector<char> piece(1 << 20, 'w');
  uint64_t done = 0;
  auto t = Clock::now();
  while (done < bytes && ::write(fd, piece.data(), piece.size()) == static_cast<ssize_t>(piece.size())) {
    done += piece.size();
  }
  const double seconds = since(t);
  ::close(fd);
  retired_trees.retire(dir);
  return done == bytes ? static_cast<double>(bytes) / seconds / 1e9 : 0;
}

struct Report {
  utsname uts{};
  FirstTouch touch_before, touch_after;
  double page_cache_gb_per_s_before = 0, page_cache_gb_per_s_after = 0;  // measure_page_cache_write()
  double create_us_before = 0, create_us_after = 0;  // measure_file_creation()
  long f_type = 0;
  bool direct_allowed = false;
  unsigned nproc = 1;
  unsigned threads_max = 1;
  double load_before = 0, load_after = 0;
  std::vector<DataResult> sets;
  bool all_met = true;
};

double loadavg1() {
  double l[1] = {0};
  return ::getloadavg(l, 1) == 1 ? l[0] : 0;
}

std::vector<Config> configs_for(const Args& a, const Env& env, const DataResult& dr, unsigned threads_max) {
  std::vector<Config> c;
  const std::string tmax = std::to_string(threads_max);
  c.push_back({"raw_read_direct", Kind::kRawRead, true, true, 1});
  c.push_back({"raw_read_warm", Kind::kRawRead, false, false, 1});
  for (unsigned t = 1; t <= threads_max; ++t) {
    // Right before the cold restore it is compared with (paired()).
    if (t == threads_max) c.push_back({"raw_read_inputs_direct", Kind::kRawReadInputs, true, true, 1});
    c.push_back({"restore_cold_t" + std::to_string(t), Kind::kRestore, true, true, t});
    c.push_back({"restore_warm_t" + std::to_string(t), Kind::kRestore, false, false, t});
  }
  c.push_back({"cli_restore_warm_t" + tmax, Kind::kCliRestore, false, false, threads_max});
  if (dr.data.shape.name == "large" && !env.cgroup_root.empty()) {
    c.push_back({"cli_restore_cgroup_warm_t" + tmax, Kind::kCliRestoreLimited, false, false, threads_max});
  }
  c.push_back({"naive_cold", Kind::kNaive, true, false, 1});
  c.push_back({"naive_warm", Kind::kNaive, false, false, 1});
  if (a.probes) {
    c.push_back({"probe_block_reader_warm", Kind::kProbeReader, false, false, 1});
    for (unsigned t = 1; t <= threads_max; ++t) {
      c.push_back({"probe_null_sink_warm_t" + std::to_string(t), Kind::kProbeNullSink, false, false, t});
      c.push_back({"probe_partition_sink_warm_t" + std::to_string(t), Kind::kProbeMapSink, false, false, t});
    }
  }
  if (dr.rocks) c.push_back({"rocksdb_recovery_warm", Kind::kRocksdbRecovery, false, false, 1});
  return c;
}

double mb(uint64_t bytes, double seconds) { return seconds > 0 ? static_cast<double>(bytes) / seconds / 1e6 : 0; }

void print_run_line(const DataResult& dr, const Config& c, const Run& r) {
  const RestoreReport& x = r.report;
  const char* name = dr.data.name.c_str();
  if (c.kind == Kind::kRestore || (c.kind == Kind::kCliRestore && r.child.exited)) {
    say("  %-11s %-30s %7.3f s  (verify %.3f replay %.3f finish %.3f publish %.3f; io %s)", name, c.name.c_str(),
        r.seconds, x.verify_s, x.replay_s, x.finish_s, x.publish_s, x.io_engine.c_str());
    if (c.kind == Kind::kCliRestore) say(" peak RSS %.1f MiB", mib(r.child.max_rss_bytes));
    say("\n");
  } else if (c.kind == Kind::kCliRestoreLimited) {
    say("  %-11s %-30s %7.3f s  %s; peak RSS %.1f MiB; cgroup peak %.1f MiB, %llu OOM kills; %s%s\n", name,
        c.name.c_str(), r.seconds, r.child.describe().c_str(), mib(r.child.max_rss_bytes),
        mib(r.cgroup_memory_peak_bytes), static_cast<unsigned long long>(r.cgroup_oom_kills),
        r.memory_flag_passed ? "--memory-limit passed" : "memory limit flag not supported",
        !r.tree_difference ? "" : r.tree_difference->empty() ? "; tree equal" : "; tree DIFFERENT");
  } else {
    say("  %-11s %-30s %7.3f s\n", name, c.name.c_str(), r.seconds);
  }
}

// The round-robin over the configurations, so a slow minute of the host
// spreads over all of them instead of one.
Status measure_set(const Args& a, const Env& env, const std::string& dir, unsigned threads_max, DataResult& dr) {
  const std::string tag = dr.data.shape.name + "-" + dr.data.codec;
  const std::string dest = dir + "/restore-dest-" + tag;
  const std::string scratch = dir + "/scratch-" + tag;
  std::error_code ec;
  fs::create_directories(scratch, ec);
  if (ec) return Status::io_error("create " + scratch + ": " + ec.message());
  remove_dest(dest);
  if (dr.data.shape.name == "large") {
    if (env.cgroup_root.empty()) {
      dr.limited_skipped = "no restore under a memory limit: " + env.cgroup_why;
      say("  %s: %s\n", dr.data.name.c_str(), dr.limited_skipped.c_str());
    } else {
      dr.reference_dest = dir + "/restore-reference-" + tag;
    }
  }
  if (!env.rocksdb) {
    dr.rocks_skipped = env.rocksdb_why;
  } else {
    say("  %s: writing the RocksDB peer's crashed DB (once; kept with the data) ...\n", dr.data.name.c_str());
    Result<bench::RocksPeerData> rocks =
        bench::prepare_rocksdb_peer(dr.data.snapshot_dir, dr.data.increments, dr.data.node_segments, dr.data.root);
    if (!rocks.ok()) return rocks.status();
    dr.rocks = rocks.value();
    say("  %s: RocksDB peer: %llu entries in %llu batches, %.1f MiB of WAL, %llu SST files before recovery\n",
        dr.data.name.c_str(), static_cast<unsigned long long>(dr.rocks->entries),
        static_cast<unsigned long long>(dr.rocks->batches), mib(dr.rocks->wal_bytes),
        static_cast<unsigned long long>(dr.rocks->sst_files));
  }
  for (const Config& c : configs_for(a, env, dr, threads_max)) dr.summaries.push_back(Summary{c, {}});
  for (uint32_t rep = 0; rep < a.repeat; ++rep) {
    for (Summary& s : dr.summaries) {
      Result<Run> r = run_once(env, dr, s.config, dest, scratch);
      if (!r.ok()) return Status(r.status().code(), dr.data.name + " " + s.config.name + ": " + r.status().message());
      dr.resident_after_evict_bytes_max = std::max(dr.resident_after_evict_bytes_max, r->resident_after_evict_bytes);
      print_run_line(dr, s.config, r.value());
      s.runs.push_back(std::move(r).value());
    }
  }
  if (!dr.reference_dest.empty()) retired_trees.retire(dr.reference_dest);
  fs::remove_all(scratch, ec);
  const Summary* naive = dr.find(Kind::kNaive, false, 1);
  dr.wal_block_bytes = naive->runs.front().naive.block_bytes;
  dr.wal_raw_bytes = naive->runs.front().naive.raw_payload_bytes;
  const Summary* restore = dr.find(Kind::kRestore, false, 1);
  dr.entries_applied = restore->runs.front().report.entries_applied;
  dr.restored_bytes = restore->runs.front().restored_bytes;
  if (dr.rocks && dr.rocks->entries != dr.entries_applied) {
    say("  note: the RocksDB peer holds %llu entries, the restore applied %llu\n",
        static_cast<unsigned long long>(dr.rocks->entries), static_cast<unsigned long long>(dr.entries_applied));
  }
  return {};
}

// Seconds and rates of a summary over `field` (best = fastest run).
struct Rates {
  double seconds_best = 0, seconds_median = 0;
  double mb_raw_best = 0, mb_raw_median = 0;    // uncompressed payload bytes
  double mb_disk_best = 0, mb_disk_median = 0;  // bytes as read from disk
  double entries_per_s_median = 0;
};

Rates rates(const DataResult& dr, const Summary& s, double Run::*field) {
  Rates r;
  r.seconds_best = s.best(field);
  r.seconds_median = s.med(field);
  uint64_t disk = dr.wal_block_bytes;
  if (s.config.kind == Kind::kRawRead) disk = dr.data.segment_files_bytes;
  if (s.config.kind == Kind::kRawReadInputs) disk = dr.data.segment_files_bytes + dr.data.snapshot_files_bytes;
  r.mb_raw_best = mb(dr.wal_raw_bytes, r.seconds_best);
  r.mb_raw_median = mb(dr.wal_raw_bytes, r.seconds_median);
  r.mb_disk_best = mb(disk, r.seconds_best);
  r.mb_disk_median = mb(disk, r.seconds_median);
  uint64_t entries = dr.entries_applied;
  if (s.config.kind == Kind::kNaive) entries = s.runs.front().naive.entries_applied;
  if (s.config.kind == Kind::kRocksdbRecovery) entries = dr.rocks->entries;
  if (s.config.kind == Kind::kRawRead || s.config.kind == Kind::kRawReadInputs ||
      s.config.kind == Kind::kProbeReader) {
    entries = 0;
  }
  r.entries_per_s_median = r.seconds_median > 0 ? static_cast<double>(entries) / r.seconds_median : 0;
  return r;
}

nlohmann::json ratio_json(double median, double best, double target, const std::string& what) {
  return {{"median", median}, {"best", best}, {"target", target}, {"met", median >= target}, {"what", what}};
}

// The ratios judged before shapes, kept as information per data set.
void compute_ratios(DataResult& dr, unsigned tmax) {
  const Summary* raw = dr.find_raw(true);
  const Summary* cold = dr.find(Kind::kRestore, true, tmax);
  const Summary* warm = dr.find(Kind::kRestore, false, tmax);
  const Summary* warm1 = dr.find(Kind::kRestore, false, 1);
  const Summary* naive = dr.find(Kind::kNaive, false, 1);
  const Summary* naive_cold = dr.find(Kind::kNaive, true, 1);
  nlohmann::json c;
  // On-disk MB/s: the restore's block bytes over its replay phase against
  // the segment files' bytes over the plain O_DIRECT read.
  Rates raw_r = rates(dr, *raw, &Run::seconds);
  Rates cold_replay = rates(dr, *cold, &Run::replay_s);
  Rates cold_total = rates(dr, *cold, &Run::seconds);
  c["cold_restore_over_raw_direct"] =
      ratio_json(cold_replay.mb_disk_median / raw_r.mb_disk_median, cold_replay.mb_disk_best / raw_r.mb_disk_best,
                 kTargetColdOverRaw,
                 "MB/s on disk: restore_cold_t" + std::to_string(tmax) +
                     " (block bytes / replay_s) over raw_read_direct (segment file bytes / s)");
  c["cold_restore_over_raw_direct"]["whole_restore_median"] = cold_total.mb_disk_median / raw_r.mb_disk_median;
  Rates warm_replay = rates(dr, *warm, &Run::replay_s);
  Rates warm1_replay = rates(dr, *warm1, &Run::replay_s);
  c["warm_replay_mb_per_s_per_core"] =
      ratio_json(warm_replay.mb_raw_median / tmax, warm_replay.mb_raw_best / tmax, kTargetWarmMbPerCore,
                 "uncompressed payload MB/s of restore_warm_t" + std::to_string(tmax) + " replay_s, divided by " +
                     std::to_string(tmax) + " threads");
  c["warm_replay_mb_per_s_per_core"]["one_thread_median"] = warm1_replay.mb_raw_median;
  Rates naive_r = rates(dr, *naive, &Run::seconds);
  Rates naive_cold_r = rates(dr, *naive_cold, &Run::seconds);
  c["restore_over_naive"] =
      ratio_json(naive_r.seconds_median / warm_replay.seconds_median, naive_r.seconds_best / warm_replay.seconds_best,
                 kTargetOverNaive, "naive_warm seconds / restore_warm_t" + std::to_string(tmax) + " replay_s");
  c["restore_over_naive"]["whole_restore_median"] =
      naive_r.seconds_median / rates(dr, *warm, &Run::seconds).seconds_median;
  c["restore_over_naive"]["cold_median"] = naive_cold_r.seconds_median / cold_replay.seconds_median;
  dr.ratios = c;
}

nlohmann::json target_json(const std::string& name, double value, double target, bool at_least,
                           const std::string& what) {
  const bool met = at_least ? value >= target : value <= target;
  return {{"name", name}, {"value", value}, {"target", target}, {"at_least", at_least}, {"met", met}, {"what", what}};
}

// The median over the rounds of a(run r) / b(run r). A round runs every
// configuration once, a pair's two a few seconds apart: a slow minute of
// the host's disk or cores slows both of a pair, where a ratio of two
// medians could take one from a slow minute and the other from a fast one.
double paired(const Summary& a, const Summary& b, const std::function<double(const Run&, const Run&)>& ratio) {
  std::vector<double> v;
  for (size_t r = 0; r < std::min(a.runs.size(), b.runs.size()); ++r) v.push_back(ratio(a.runs[r], b.runs[r]));
  return median(v);
}

nlohmann::json skipped_target(const std::string& name, const std::string& why) {
  return {{"name", name}, {"met", nullptr}, {"skipped", why}};
}

// The peak RSS of the unconstrained CLI restore against the restored bytes.
void rss_target(const Env& env, DataResult& dr) {
  const Summary* cli = dr.find_kind(Kind::kCliRestore);
  std::vector<double> rss;
  for (const Run& r : cli->runs) rss.push_back(static_cast<double>(r.child.max_rss_bytes));
  const double ratio = dr.restored_bytes > 0 ? median(rss) / static_cast<double>(dr.restored_bytes) : 0;
  if (dr.restored_bytes <= env.memory_limit_bytes) {
    dr.targets.push_back(target_json("peak_rss_over_restored_bytes", ratio, kRssOverRestored, false,
                                     cli->config.name + " ru_maxrss (median) / restored partition file bytes"));
  } else {
    dr.targets.push_back(skipped_target("peak_rss_over_restored_bytes",
                                        "restored bytes exceed --memory-limit; the ratio is " + std::to_string(ratio)));
  }
}

// The restore under the cgroup limit: equal trees, in at most 2x the time.
void limited_targets(DataResult& dr) {
  const Summary* limited = dr.find_kind(Kind::kCliRestoreLimited);
  if (limited == nullptr) {
    dr.targets.push_back(skipped_target("memory_limited_restore", dr.limited_skipped));
    return;
  }
  bool all_ok = true, all_equal = true;
  std::string how;
  for (const Run& r : limited->runs) {
    all_ok = all_ok && r.child.exited && r.child.exit_code == 0;
    all_equal = all_equal && r.tree_difference && r.tree_difference->empty();
    if (how.empty() && !(r.child.exited && r.child.exit_code == 0)) how = r.child.describe();
    if (how.empty() && r.tree_difference && !r.tree_difference->empty()) how = *r.tree_difference;
  }
  const double ratio = limited->med(&Run::seconds) / dr.find_kind(Kind::kCliRestore)->med(&Run::seconds);
  nlohmann::json eq = target_json("memory_limited_restore_equal", all_ok && all_equal ? 1 : 0, 1, true,
                                  "every limited restore exited 0 and its tree equals the unconstrained one's "
                                  "(all files but RESTORED)");
  if (!how.empty()) eq["first_problem"] = how;
  dr.targets.push_back(eq);
  if (all_ok) {
    dr.targets.push_back(target_json("memory_limited_time_ratio", ratio, kLimitedOverUnconstrained, false,
                                     limited->config.name + " seconds / " + dr.find_kind(Kind::kCliRestore)->config.name +
                                         " seconds (medians, fork to wait4)"));
  } else {
    dr.targets.push_back(skipped_target("memory_limited_time_ratio", "the limited restore failed: " + how));
  }
}

void targets_for(const Env& env, DataResult& dr, unsigned tmax) {
  const std::string& shape = dr.data.shape.name;
  const std::string t = std::to_string(tmax);
  const Summary* warm = dr.find(Kind::kRestore, false, tmax);
  if (shape == "small") {
    const Summary* rocks = dr.find_kind(Kind::kRocksdbRecovery);
    if (rocks != nullptr) {
      const double entries = static_cast<double>(dr.entries_applied) / static_cast<double>(dr.rocks->entries);
      const double ratio =
          paired(*warm, *rocks, [&](const Run& w, const Run& r) { return entries * r.seconds / w.seconds; });
      nlohmann::json j = target_json("whole_warm_restore_over_rocksdb_recovery", ratio, kSmallOverRocksdb, true,
                                     "entries/s: restore_warm_t" + t +
                                         " whole call over rocksdb_recovery_warm "
                                         "(DB::Open) of the same round, the median over the rounds");
      j["ratio_of_medians"] =
          rates(dr, *warm, &Run::seconds).entries_per_s_median / rates(dr, *rocks, &Run::seconds).entries_per_s_median;
      dr.targets.push_back(j);
    } else {
      dr.targets.push_back(skipped_target("whole_warm_restore_over_rocksdb_recovery", dr.rocks_skipped));
    }
    dr.targets.push_back(target_json("replay_entries_per_s_per_core",
                                     rates(dr, *warm, &Run::replay_s).entries_per_s_median / tmax,
                                     kSmallReplayEntriesPerCore, true,
                                     "entries applied / replay_s of restore_warm_t" + t + ", divided by " + t));
    const Summary& raw = *dr.find_kind(Kind::kRawReadInputs);
    const Summary& cold = *dr.find(Kind::kRestore, true, tmax);
    nlohmann::json j = target_json(
        "cold_restore_over_direct_read_of_inputs",
        paired(raw, cold, [](const Run& r, const Run& c) { return r.seconds / c.seconds; }), kSmallColdOverDirectRead,
        true,
        "raw_read_inputs_direct seconds / restore_cold_t" + t +
            " whole-call seconds right after it (same files: segments and snapshot partition files), the median "
            "over the rounds");
    j["ratio_of_medians"] = raw.med(&Run::seconds) / cold.med(&Run::seconds);
    dr.targets.push_back(j);
  }
  if (shape == "fat") {
    dr.targets.push_back(target_json("warm_replay_mb_per_s_per_core",
                                     rates(dr, *warm, &Run::replay_s).mb_raw_median / tmax, kFatWarmMbPerCore, true,
                                     "uncompressed WAL MB/s of restore_warm_t" + t + " replay_s, divided by " + t));
  }
  rss_target(env, dr);
  if (shape == "large") limited_targets(dr);
}

void print_table(const DataResult& dr) {
  say("%-34s %9s %9s %10s %10s %12s  %s\n", "config", "best s", "median s", "MB/s raw", "MB/s disk", "entries/s",
      "median phases (s): verify load replay repair checkpoint publish | other");
  for (const Summary& s : dr.summaries) {
    Rates total = rates(dr, s, &Run::seconds);
    std::string phases;
    const bool restore_row = s.config.kind == Kind::kRestore ||
                             (s.config.kind == Kind::kCliRestore) ||
                             (s.config.kind == Kind::kCliRestoreLimited && s.runs.front().child.exited &&
                              s.runs.front().child.exit_code == 0);
    if (restore_row) {
      auto m = [&](double RestoreReport::*f) {
        std::vector<double> v;
        for (const Run& run : s.runs) v.push_back(run.report.*f);
        return median(v);
      };
      std::vector<double> other;
      for (const Run& run : s.runs) {
        const RestoreReport& x = run.report;
        other.push_back(run.seconds - x.verify_s - x.replay_s - x.finish_s - x.publish_s);
      }
      char text[200];
      std::snprintf(text, sizeof text, "%.3f %.3f %.3f %.3f | %.3f", m(&RestoreReport::verify_s),
                    m(&RestoreReport::replay_s), m(&RestoreReport::finish_s), m(&RestoreReport::publish_s),
                    median(other));
      phases = text;
      if (s.config.kind != Kind::kRestore) {
        std::vector<double> rss;
        for (const Run& run : s.runs) rss.push_back(static_cast<double>(run.child.max_rss_bytes));
        std::snprintf(text, sizeof text, "; peak RSS %.1f MiB", mib(static_cast<uint64_t>(median(rss))));
        phases += text;
      }
    }
    if (s.config.kind == Kind::kCliRestoreLimited && !restore_row) phases = s.runs.front().child.describe();
    if (s.config.kind == Kind::kNaive) {
      const bench::NaiveReplayResult& n = s.runs.front().naive;
      char text[200];
      std::snprintf(text, sizeof text, "first run: filter %.3f read %.3f crc %.3f decode %.3f parse %.3f apply %.3f",
                    n.filter_s, n.read_s, n.crc_s, n.decode_s, n.parse_s, n.apply_s);
      phases = text;
    }
    if (s.config.kind == Kind::kProbeMapSink) {
      char text[120];
      std::snprintf(text, sizeof text, "time inside the sink, summed over threads: %.3f s (median)",
                    s.med(&Run::apply_s));
      phases = text;
    }
    say("%-34s %9.3f %9.3f %10.0f %10.0f %12.0f  %s\n", s.config.name.c_str(), total.seconds_best,
        total.seconds_median, total.mb_raw_median, total.mb_disk_median, total.entries_per_s_median, phases.c_str());
    if (s.config.kind == Kind::kRestore) {
      Rates replay = rates(dr, s, &Run::replay_s);
      say("%-34s %9.3f %9.3f %10.0f %10.0f %12.0f\n", ("  replay phase of " + s.config.name).c_str(),
          replay.seconds_best, replay.seconds_median, replay.mb_raw_median, replay.mb_disk_median,
          replay.entries_per_s_median);
    }
  }
}

void print_set(const DataResult& dr, unsigned tmax) {
  const DataSet& d = dr.data;
  say("\n%s (%s): %zu segment files, %.1f MiB of files; %llu block bytes (%.1f MiB) and %llu uncompressed payload "
      "bytes (%.1f MiB) up to FINISH; %llu entries applied; full snapshot %zu files, %.1f MiB; restored partition "
      "files %.1f MiB\n",
      d.name.c_str(), d.shape.what.c_str(), d.segment_paths.size(), mib(d.segment_files_bytes),
      static_cast<unsigned long long>(dr.wal_block_bytes), mib(dr.wal_block_bytes),
      static_cast<unsigned long long>(dr.wal_raw_bytes), mib(dr.wal_raw_bytes),
      static_cast<unsigned long long>(dr.entries_applied), d.snapshot_paths.size(), mib(d.snapshot_files_bytes),
      mib(dr.restored_bytes));
  say("page cache: cold rows evicted (fdatasync + POSIX_FADV_DONTNEED); at most %llu bytes stayed resident\n",
      static_cast<unsigned long long>(dr.resident_after_evict_bytes_max));
  print_table(dr);
  if (!dr.rocks_skipped.empty()) say("RocksDB peer: skipped: %s\n", dr.rocks_skipped.c_str());
  say("ratios (medians, information):\n");
  const nlohmann::json& x = dr.ratios["cold_restore_over_raw_direct"];
  const nlohmann::json& y = dr.ratios["warm_replay_mb_per_s_per_core"];
  const nlohmann::json& z = dr.ratios["restore_over_naive"];
  say("  cold replay / raw O_DIRECT read of the segments  %6.3f (whole restore %.3f)\n", x["median"].get<double>(),
      x["whole_restore_median"].get<double>());
  say("  warm replay MB/s per core                        %6.0f (one thread %.0f)\n", y["median"].get<double>(),
      y["one_thread_median"].get<double>());
  say("  restore / naive                                  %6.2f (whole restore %.2f, cold %.2f)\n",
      z["median"].get<double>(), z["whole_restore_median"].get<double>(), z["cold_median"].get<double>());
  say("targets (threads %u):\n", tmax);
  for (const nlohmann::json& t : dr.targets) {
    if (t["met"].is_null()) {
      say("  %-42s skipped: %s\n", t["name"].get<std::string>().c_str(), t["skipped"].get<std::string>().c_str());
      continue;
    }
    say("  %-42s %12.3f  target %s %g: %s", t["name"].get<std::string>().c_str(), t["value"].get<double>(),
        t["at_least"].get<bool>() ? ">=" : "<=", t["target"].get<double>(), t["met"].get<bool>() ? "met" : "NOT met");
    if (t.contains("ratio_of_medians")) say(" (ratio of the medians %.3f)", t["ratio_of_medians"].get<double>());
    if (t.contains("first_problem")) say(" (%s)", t["first_problem"].get<std::string>().c_str());
    say("\n");
  }
}

void print_report(const Args& a, const Env& env, const Report& r) {
  say("\nwalcut_restore_bench: repeat %u, threads 1..%u, %u CPUs, Linux %s %s, filesystem %s, O_DIRECT %s\n", a.repeat,
      r.threads_max, r.nproc, r.uts.release, r.uts.machine, bench::filesystem_name(r.f_type).c_str(),
      r.direct_allowed ? "used" : "REFUSED (direct rows read buffered)");
  say("load average %.2f at the start, %.2f at the end (the machine is shared: other processes use the same cores)\n",
      r.load_before, r.load_after);
  say("fresh memory (%llu MiB, huge pages asked for): first write %.2f GB/s at the start, %.2f at the end; "
      "written again %.1f GB/s\n",
      static_cast<unsigned long long>(r.touch_before.bytes >> 20), r.touch_before.first_gb_per_s,
      r.touch_after.first_gb_per_s, r.touch_before.again_gb_per_s);
  say("page cache (%llu MiB written to a new file, 1 MiB a write; 0: could not): %.2f GB/s at the start, %.2f at "
      "the end\n",
      static_cast<unsigned long long>(kPageCacheProbeBytes >> 20), r.page_cache_gb_per_s_before,
      r.page_cache_gb_per_s_after);
  say("file creation (%d empty files in a new directory; 0: could not): %.1f us a file at the start, %.1f at the "
      "end\n",
      kCreateProbeFiles, r.create_us_before, r.create_us_after);
  say("CLI %s: --memory-limit %s; cgroup: %s; the CLI printing its help peaks at %.1f MiB RSS (the floor under "
      "the cli rows' peak RSS)\n",
      env.cli.c_str(), env.cli_memory_flag ? "supported" : "not supported (memory limit flag not supported)",
      env.cgroup_root.empty() ? env.cgroup_why.c_str() : env.cgroup_root.c_str(), mib(env.child_rss_floor_bytes));
  for (const DataResult& dr : r.sets) print_set(dr, r.threads_max);
  say("\n(MB = 10^6 bytes. \"MB/s raw\": uncompressed block payload bytes up to each node's FINISH record, counted by "
      "the naive replayer, over the time; \"MB/s disk\": block headers + stored payloads (RestoreReport::bytes_read), "
      "or for raw_read rows the files' bytes including preallocated zeros. Restore rows: whole call first, then its "
      "replay phase alone. cli rows: the walcut CLI as a child, fork to wait4.)\n");
}

nlohmann::json run_json(const Run& run, Kind k) {
  nlohmann::json j = {{"seconds", run.seconds}, {"replay_s", run.replay_s}};
  const bool has_report = k == Kind::kRestore || ((k == Kind::kCliRestore || k == Kind::kCliRestoreLimited) &&
                                                   run.child.exited && run.child.exit_code == 0);
  if (has_report) {
    const RestoreReport& x = run.report;
    j["phases"] = {{"verify_s", x.verify_s}, {"replay_s", x.replay_s}, {"finish_s", x.finish_s},
                   {"publish_s", x.publish_s}};
    j["memory"] = {{"limit_bytes", x.memory_limit}, {"routed_bytes_peak", x.routed_bytes_peak},
                   {"spill_files", x.spill_files}, {"spilled_bytes", x.spilled_bytes}};
    j["report"] = nlohmann::json::parse(to_json(x));  // the keys of `walcut snapshot restore --json`
  }
  if (k == Kind::kRestore) j["restored_bytes"] = run.restored_bytes;
  if (k == Kind::kCliRestore || k == Kind::kCliRestoreLimited) {
    j["child"] = {{"ended", run.child.describe()},
                  {"exit_code", run.child.exited ? nlohmann::json(run.child.exit_code) : nlohmann::json(nullptr)},
                  {"signal", run.child.exited ? nlohmann::json(nullptr) : nlohmann::json(run.child.signal)},
                  {"max_rss_bytes", run.child.max_rss_bytes}};
    if (!run.child.exited || run.child.exit_code != 0) j["child"]["stderr"] = run.child.stderr_text;
  }
  if (k == Kind::kCliRestoreLimited) {
    j["memory_limit_flag_passed"] = run.memory_flag_passed;
    j["cgroup_memory_peak_bytes"] = run.cgroup_memory_peak_bytes;
    j["cgroup_oom_kills"] = run.cgroup_oom_kills;
    j["tree"] = !run.tree_difference ? nlohmann::json(nullptr)
                : run.tree_difference->empty() ? nlohmann::json("equal")
                                              : nlohmann::json(*run.tree_difference);
  }
  if (k == Kind::kNaive) {
    const bench::NaiveReplayResult& n = run.naive;
    j["naive"] = {{"segments", n.segments},
                  {"blocks", n.blocks},
                  {"records", n.records},
                  {"entries_applied", n.entries_applied},
                  {"entries_filtered", n.entries_filtered},
                  {"file_bytes_read", n.file_bytes_read},
                  {"block_bytes", n.block_bytes},
                  {"raw_payload_bytes", n.raw_payload_bytes},
                  {"partitions", n.partitions},
                  {"keys", n.keys},
                  {"stages",
                   {{"filter_s", n.filter_s},
                    {"read_s", n.read_s},
                    {"crc_s", n.crc_s},
                    {"decode_s", n.decode_s},
                    {"parse_s", n.parse_s},
                    {"apply_s", n.apply_s}}}};
  }
  if (k == Kind::kProbeMapSink) j["apply_s_summed_over_threads"] = run.apply_s;
  if (k == Kind::kProbeReader || k == Kind::kProbeNullSink || k == Kind::kProbeMapSink) {
    j["blocks"] = run.report.blocks;
    j["bytes_read"] = run.report.bytes_read;
    j["io_engine"] = run.report.io_engine;
  }
  if (k == Kind::kRocksdbRecovery) j["sst_files_after"] = run.rocks.sst_files_after;
  return j;
}

nlohmann::json rates_json(const Rates& q) {
  return nlohmann::json{{"seconds_best", q.seconds_best},       {"seconds_median", q.seconds_median},
                        {"mb_per_s_raw_best", q.mb_raw_best},   {"mb_per_s_raw_median", q.mb_raw_median},
                        {"mb_per_s_disk_best", q.mb_disk_best}, {"mb_per_s_disk_median", q.mb_disk_median},
                        {"entries_per_s_median", q.entries_per_s_median}};
}

// Per thread count: the warm and cold restore, whole and replay phase.
nlohmann::json per_threads_json(const DataResult& dr, unsigned tmax) {
  nlohmann::json out = nlohmann::json::array();
  for (unsigned t = 1; t <= tmax; ++t) {
    const Summary* warm = dr.find(Kind::kRestore, false, t);
    const Summary* cold = dr.find(Kind::kRestore, true, t);
    Rates w = rates(dr, *warm, &Run::seconds), wr = rates(dr, *warm, &Run::replay_s);
    Rates c = rates(dr, *cold, &Run::seconds), cr = rates(dr, *cold, &Run::replay_s);
    out.push_back({{"threads", t},
                   {"warm_seconds_median", w.seconds_median},
                   {"warm_entries_per_s", w.entries_per_s_median},
                   {"warm_replay_seconds_median", wr.seconds_median},
                   {"warm_replay_entries_per_s", wr.entries_per_s_median},
                   {"warm_replay_entries_per_s_per_core", wr.entries_per_s_median / t},
                   {"warm_replay_mb_per_s_raw_per_core", wr.mb_raw_median / t},
                   {"cold_seconds_median", c.seconds_median},
                   {"cold_entries_per_s", c.entries_per_s_median},
                   {"cold_replay_seconds_median", cr.seconds_median}});
  }
  return out;
}

nlohmann::json set_json(const Env& env, const DataResult& dr, unsigned tmax) {
  const DataSet& d = dr.data;
  nlohmann::json c;
  c["shape"] = d.shape.name;
  c["codec"] = d.codec;
  c["what"] = d.shape.what;
  c["options"] = bench::options_json(d.shape.options);
  c["data"] = {{"dir", d.root},
               {"segment_files", d.segment_paths.size()},
               {"segment_files_bytes", d.segment_files_bytes},
               {"snapshot_files", d.snapshot_paths.size()},
               {"snapshot_files_bytes", d.snapshot_files_bytes},
               {"increments", d.increments},
               {"wal_block_bytes", dr.wal_block_bytes},
               {"wal_raw_bytes", dr.wal_raw_bytes},
               {"entries_applied", dr.entries_applied},
               {"restored_bytes", dr.restored_bytes},
               {"generation", d.generation}};
  c["page_cache_eviction"] = {{"method", "fdatasync + posix_fadvise(POSIX_FADV_DONTNEED), checked with mincore"},
                              {"resident_after_bytes_max", dr.resident_after_evict_bytes_max}};
  c["threads"] = per_threads_json(dr, tmax);
  const Summary* cli = dr.find_kind(Kind::kCliRestore);
  std::vector<double> rss;
  for (const Run& r : cli->runs) rss.push_back(static_cast<double>(r.child.max_rss_bytes));
  c["peak_rss"] = {{"config", cli->config.name},
                   {"max_rss_bytes_median", median(rss)},
                   {"restored_bytes", dr.restored_bytes},
                   {"ratio", dr.restored_bytes ? median(rss) / static_cast<double>(dr.restored_bytes) : 0},
                   {"memory_limit_bytes", env.memory_limit_bytes}};
  if (d.shape.name == "large") {
    c["memory_limited"] = {{"cgroup_memory_max_bytes", env.cgroup_memory_bytes},
                           {"memory_limit", env.memory_limit_text},
                           {"memory_limit_flag_supported", env.cli_memory_flag},
                           {"skipped", dr.limited_skipped.empty() ? nlohmann::json(nullptr)
                                                                  : nlohmann::json(dr.limited_skipped)}};
  }
  if (dr.rocks) {
    const Summary* rs = dr.find_kind(Kind::kRocksdbRecovery);
    const bench::RocksPeerData& p = *dr.rocks;
    c["rocksdb"] = {{"version", bench::rocksdb_version()},
                    {"entries", p.entries},
                    {"batches", p.batches},
                    {"puts", p.puts},
                    {"deletes", p.deletes},
                    {"key_bytes", p.key_bytes},
                    {"value_bytes", p.value_bytes},
                    {"wal_bytes", p.wal_bytes},
                    {"sst_files_before_recovery", p.sst_files},
                    {"write_s", p.write_s},
                    {"recovery", rates_json(rates(dr, *rs, &Run::seconds))},
                    {"what", "DB::Open with default options (64 MiB memtable) of a DB closed with every entry in "
                             "its WAL and none flushed; page cache warm"}};
  } else {
    c["rocksdb"] = {{"skipped", dr.rocks_skipped}};
  }
  for (const Summary& s : dr.summaries) {
    nlohmann::json x;
    x["name"] = s.config.name;
    x["kind"] = kind_name(s.config.kind);
    x["cache"] = s.config.cold ? "cold" : "warm";
    x["direct"] = s.config.direct && direct_allowed_for(d.segment_paths.front());
    x["threads"] = s.config.threads;
    x["total"] = rates_json(rates(dr, s, &Run::seconds));
    x["replay"] = rates_json(rates(dr, s, &Run::replay_s));
    for (const Run& run : s.runs) x["runs"].push_back(run_json(run, s.config.kind));
    c["configs"].push_back(x);
  }
  c["ratios"] = dr.ratios;
  c["targets"] = dr.targets;
  return c;
}

Status write_json(const Args& a, const Env& env, const Report& r) {
  nlohmann::json j;
  j["machine"] = {
      {"nproc", r.nproc},
      {"kernel", r.uts.release},
      {"arch", r.uts.machine},
      {"filesystem", bench::filesystem_name(r.f_type)},
      {"o_direct_allowed", r.direct_allowed},
      {"load_average_start", r.load_before},
      {"load_average_end", r.load_after},
      {"fresh_memory",
       {{"bytes", r.touch_before.bytes},
        {"first_write_gb_per_s_start", r.touch_before.first_gb_per_s},
        {"first_write_gb_per_s_end", r.touch_after.first_gb_per_s},
        {"written_again_gb_per_s", r.touch_before.again_gb_per_s},
        {"what", "one write per 4 KiB page of a fresh MADV_HUGEPAGE mapping, then memset of it"}}},
      {"page_cache_write",
       {{"bytes", kPageCacheProbeBytes},
        {"gb_per_s_start", r.page_cache_gb_per_s_before},
        {"gb_per_s_end", r.page_cache_gb_per_s_after},
        {"what", "1 MiB writes into a new file beside the data, no sync (0: could not)"}}},
      {"file_creation",
       {{"files", kCreateProbeFiles},
        {"us_per_file_start", r.create_us_before},
        {"us_per_file_end", r.create_us_after},
        {"what", "open(O_CREAT | O_EXCL) and close of empty files in a new directory beside the data"}}},
      {"cgroup_memory", env.cgroup_root.empty() ? nlohmann::json({{"usable", false}, {"why", env.cgroup_why}})
                                                : nlohmann::json({{"usable", true}, {"root", env.cgroup_root}})},
      {"shared", "other processes ran on the same cores during the measurement"}};
  j["settings"] = {
      {"repeat", a.repeat},
      {"scale", a.scale},
      {"memory_limit", env.memory_limit_text},
      {"memory_limit_bytes", env.memory_limit_bytes},
      {"cgroup_memory_max_bytes", env.cgroup_memory_bytes},
      {"threads_max", r.threads_max},
      {"chunk_bytes", {{"buffered", kBufferedChunkBytes}, {"direct", kDirectChunkBytes}}},
      {"cli", env.cli},
      {"cli_memory_limit_flag", env.cli_memory_flag},
      {"child_rss_floor_bytes", env.child_rss_floor_bytes},
      {"rocksdb_peer", env.rocksdb ? nlohmann::json(bench::rocksdb_version()) : nlohmann::json(env.rocksdb_why)}};
  j["units"] = {{"MB", "10^6 bytes"},
                {"mb_per_s_raw", "uncompressed block payload bytes up to each node's FINISH record / seconds"},
                {"mb_per_s_disk",
                 "restore, naive, probes: block headers + stored payloads (RestoreReport::bytes_read) / seconds; "
                 "raw_read: segment file bytes (preallocated zeros included) / seconds; raw_read_inputs: segment "
                 "and snapshot partition file bytes / seconds"},
                {"entries_per_s", "entries applied by the restore (RocksDB: entries written to it) / seconds"}};
  for (const DataResult& dr : r.sets) j["shapes"].push_back(set_json(env, dr, r.threads_max));
  j["all_met"] = r.all_met;
  j["notices"] = bench::notices();
  std::ofstream out(a.json_out);
  out << j.dump(2) << "\n";
  if (!out) return Status::io_error("cannot write " + a.json_out);
  return {};
}

int fail(const Status& s) {
  std::fprintf(stderr, "walcut_restore_bench: %s\n", s.to_string().c_str());
  return kExitIoError;
}

int usage(const std::string& text) {
  std::fprintf(stderr, "walcut_restore_bench: %s\n", text.c_str());
  return kExitUsage;
}

Env find_env(const Args& a, const std::string& dir) {
  Env env;
  env.cli = a.cli;
  env.memory_limit_text = a.memory_limit_text;
  env.memory_limit_bytes = cli::parse_byte_size(a.memory_limit_text).value_or(0);  // run_bench checked both
  env.cgroup_memory_bytes = cli::parse_byte_size(a.cgroup_memory_text).value_or(0);
  Result<bench::ChildRun> help = bench::restore_help(a.cli, dir);
  if (help.ok()) {
    env.cli_memory_flag = help->stdout_text.find("--memory-limit") != std::string::npos;
    env.child_rss_floor_bytes = help->max_rss_bytes;
  }
  Result<std::string> root = bench::MemoryCgroup::find_root();
  if (root.ok()) {
    env.cgroup_root = root.value();
  } else {
    env.cgroup_why = root.status().message();
  }
  env.rocksdb = a.rocksdb && bench::rocksdb_peer_built();
  if (!a.rocksdb) env.rocksdb_why = "--no-rocksdb";
  if (!bench::rocksdb_peer_built()) env.rocksdb_why = "built without RocksDB (pkg-config rocksdb not found)";
  return env;
}

int run_bench(const Args& a) {
  Status spawner = bench::start_spawner();  // while this process is small: see start_spawner()
  if (!spawner.ok()) return fail(spawner);
  const uint64_t limit_bytes = cli::parse_byte_size(a.memory_limit_text).value_or(0);
  if (limit_bytes < (1 << 20)) {
    return usage("--memory-limit: not a size of at least 1M: " + a.memory_limit_text);
  }
  if (cli::parse_byte_size(a.cgroup_memory_text).value_or(0) < (1 << 20)) {
    return usage("--cgroup-memory: not a size of at least 1M: " + a.cgroup_memory_text);
  }
  if (::access(a.cli.c_str(), X_OK) != 0) return usage("--cli: not an executable: " + a.cli);
  std::string dir = a.dir;
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/walcut-restore-bench-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) return fail(Status::from_errno("mkdtemp " + pattern, errno));
    dir = pattern;
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail(Status::io_error("create " + dir + ": " + ec.message()));
  struct Cleanup {
    std::string dir;
    bool remove;
    ~Cleanup() {
      std::error_code ec;
      if (remove) fs::remove_all(dir, ec);
    }
  } cleanup{dir, a.dir.empty() && !a.keep};

  bench::ShapeSettings settings;
  settings.scale = a.scale;
  settings.memory_limit_bytes = limit_bytes;
  std::vector<DataSet> sets;
  for (const std::string& shape_name : a.shapes.empty() ? bench::shape_names() : a.shapes) {
    for (const std::string& codec : a.codecs) {
      DataSet d;
      d.shape = *bench::make_shape(shape_name, *parse_codec(codec), settings);
      d.codec = codec;
      d.name = shape_name + "/" + codec;
      d.root = dir + "/" + shape_name + "-" + codec;
      d.snapshot_dir = d.root + "/snapshots/snp";
      sets.push_back(std::move(d));
    }
  }

  Report report;
  report.load_before = loadavg1();
  report.touch_before = measure_first_touch(64 << 20);
  report.nproc = std::max(1u, std::thread::hardware_concurrency());
  report.threads_max = a.threads_max > 0 ? a.threads_max : report.nproc;
  ::uname(&report.uts);
  struct statfs sfs {};
  if (::statfs(dir.c_str(), &sfs) == 0) report.f_type = static_cast<long>(sfs.f_type);
  const Env env = find_env(a, dir);
  say("CLI %s: --memory-limit %s; cgroup memory: %s; RocksDB peer: %s\n", env.cli.c_str(),
      env.cli_memory_flag ? "supported" : "not supported", env.cgroup_root.empty() ? env.cgroup_why.c_str() : "usable",
      env.rocksdb ? bench::rocksdb_version().c_str() : env.rocksdb_why.c_str());

  retired_trees.set_root(dir);
  report.create_us_before = measure_file_creation(dir + "/create-probe-start", kCreateProbeFiles);
  report.page_cache_gb_per_s_before = measure_page_cache_write(dir + "/page-cache-probe-start", kPageCacheProbeBytes);
  Status s = generate_missing(dir, sets);
  if (!s.ok()) return fail(s);
  for (DataSet& d : sets) {
    s = open_data(d);
    if (!s.ok()) return fail(s);
    if (report.sets.empty()) report.direct_allowed = direct_allowed_for(d.segment_paths.front());
    say("\nmeasuring %s (%zu segment files, %.1f MiB; %zu snapshot partition files, %.1f MiB) ...\n", d.name.c_str(),
        d.segment_paths.size(), mib(d.segment_files_bytes), d.snapshot_paths.size(), mib(d.snapshot_files_bytes));
    DataResult dr;
    dr.data = std::move(d);
    s = measure_set(a, env, dir, report.threads_max, dr);
    if (!s.ok()) return fail(s);
    compute_ratios(dr, report.threads_max);
    targets_for(env, dr, report.threads_max);
    for (const nlohmann::json& t : dr.targets) {
      if (dr.data.codec == "none" && t["met"].is_boolean() && !t["met"].get<bool>()) report.all_met = false;
    }
    report.sets.push_back(std::move(dr));
  }
  report.create_us_after = measure_file_creation(dir + "/create-probe-end", kCreateProbeFiles);
  report.page_cache_gb_per_s_after = measure_page_cache_write(dir + "/page-cache-probe-end", kPageCacheProbeBytes);
  say("%s\n", retired_trees.finish().c_str());
  report.load_after = loadavg1();
  report.touch_after = measure_first_touch(64 << 20);
  print_report(a, env, report);
  if (!a.json_out.empty()) {
    s = write_json(a, env, report);
    if (!s.ok()) return fail(s);
    say("JSON written to %s\n", a.json_out.c_str());
  }
  if (!cleanup.remove) say("data kept in %s\n", dir.c_str());
  return a.enforce && !report.all_met ? kExitTargetMissed : 0;
}

}  // namespace
}  // namespace walcut

int main(int argc, char** argv) {
  walcut::reuse_freed_memory();  // as the CLI does: the in-process restores measure what it runs
  walcut::Args a;
  CLI::App app{
      "walcut_restore_bench: restore_snapshot() per data shape, cold and warm, against a plain read of the same "
      "files, a naive one-thread replayer and RocksDB's recovery of the same entries"};
  app.add_option("--dir", a.dir,
                 "Data directory, kept: DIR/<shape>-<codec> is generated when it does not hold that shape "
                 "(default: a temporary one)");
  app.add_option("--shape", a.shapes, "Shapes to measure: small, fat, hot, large (repeatable; default: all)")
      ->check(CLI::IsMember(walcut::bench::shape_names()));
  app.add_option("--scale", a.scale,
                 "Multiplies the transactions of small, fat and hot (1: small 1.5 M, fat 1 M, hot 1 M)")
      ->check(CLI::Range(1e-6, 100.0))
      ->capture_default_str();
  app.add_option("--memory-limit", a.memory_limit_text,
                 "Sizes `large` (restored bytes >= 3x this); passed to the CLI's restore under the cgroup limit "
                 "when it has the flag")
      ->capture_default_str();
  app.add_option("--cgroup-memory", a.cgroup_memory_text, "memory.max of the cgroup the limited restore runs in")
      ->capture_default_str();
  app.add_option("--repeat", a.repeat, "Runs per configuration (best and median)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  app.add_option("--codec", a.codecs, "Codecs to generate and measure each shape with")
      ->check(CLI::IsMember({"none", "lz4"}))
      ->capture_default_str();
  app.add_option("--threads-max", a.threads_max, "Measure restore on 1..N threads (0: nproc)")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  app.add_option("--json-out", a.json_out, "Write the results as JSON to this file");
  app.add_option("--cli", a.cli, "The walcut CLI run as a child for peak RSS and the limited restore")
      ->capture_default_str();
  app.add_flag("--keep", a.keep, "Keep the generated temporary directory");
  app.add_flag("--enforce", a.enforce, "Exit 1 when a shape's target is missed (judged on codec none)");
  app.add_flag("!--no-probes", a.probes,
               "Skip the stage probes (block reader alone, replay into a null sink, "
               "replay into partition maps)");
  app.add_flag("!--no-rocksdb", a.rocksdb, "Skip the RocksDB peer");
  CLI11_PARSE(app, argc, argv);
  return walcut::run_bench(a);
}
