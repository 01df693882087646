#include "tools/snapshot_commands.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <nlohmann/json.hpp>

#include "io/file_util.h"
#include "replay/check.h"
#include "replay/memory_limit.h"
#include "replay/restore.h"
#include "tools/cli_util.h"
#include "tools/progress.h"
#include "tools/snapshot_info.h"

namespace walcut::cli {
namespace {

constexpr uint64_t kMaxIncrement = 1000000;
constexpr uint64_t kMaxThreads = 1024;

struct RestoreArgs {
  std::string snapshot;
  uint64_t increment = 0;
  std::string dest;
  std::vector<std::string> groups;
  std::string node;
  unsigned threads = 0;
  std::string memory_limit;
  unsigned max_passes = 1;
  std::string io = "auto";
  bool direct = false;
  ReadSizeFlags read_sizes;
  bool json = false;
  bool wait = false;
  std::string progress = "auto";
  bool dry_run = false;
};

constexpr double kMiB = 1 << 20;
double mib(uint64_t bytes) { return static_cast<double>(bytes) / kMiB; }

// What a dry run found it would restore.
void print_dry_run(const RestoreReport& x, const RestoreArgs& a) {
  std::printf("dry run: %s up to increment %llu verified; nothing written\n", a.snapshot.c_str(),
              static_cast<unsigned long long>(a.increment));
  if (x.already_restored) std::printf("  %s already holds this restore: it would do nothing\n", a.dest.c_str());
  std::printf("  would restore    %s, %s, %s (%s, %.1f MiB read)\n", count_of(x.nodes, "node").c_str(),
              count_of(x.groups, "group").c_str(), count_of(x.partitions, "partition").c_str(),
              count_of(x.partition_files, "partition file").c_str(), mib(x.partition_bytes));
  std::printf("  segments         %llu (%llu blocks, %.1f MiB)\n", static_cast<unsigned long long>(x.segments),
              static_cast<unsigned long long>(x.blocks), mib(x.bytes_read));
  std::printf("  entries          %llu to apply, %llu filtered out\n",
              static_cast<unsigned long long>(x.entries_applied), static_cast<unsigned long long>(x.entries_filtered));
  if (x.peer_nodes > 0) {
    std::printf("  peers            %s read for their ATOMIC copies (%.1f MiB)\n",
                count_of(x.peer_nodes, "node").c_str(), mib(x.peer_bytes_read));
  }
}

// The restore's options from the flags; a --memory-limit that is not a size is a usage error.
Result<RestoreOptions> restore_options(const RestoreArgs& a) {
  RestoreOptions o;
  o.snapshot_dir = a.snapshot;
  o.increment = a.increment;
  o.dest = a.dest;
  o.wait = a.wait;
  o.dry_run = a.dry_run;
  o.groups = a.groups;
  if (!a.node.empty()) o.node = a.node;
  o.threads = a.threads;
  if (!a.memory_limit.empty()) {
    std::optional<uint64_t> limit = parse_byte_size(a.memory_limit);
    if (!limit) {
      return Status::invalid_argument("--memory-limit " + a.memory_limit +
                                      ": not a size (a number of bytes, or with K, M, G or T)");
    }
    if (*limit == 0) {
      return Status::invalid_argument("--memory-limit " + a.memory_limit + ": the budget must be at least 1 byte");
    }
    o.memory_limit = *limit;
  }
  o.max_passes = a.max_passes;
  o.io.engine = io_engine_of(a.io);
  o.io.direct = a.direct;
  WALCUT_RETURN_IF_ERROR(a.read_sizes.apply(o.io));
  return o;
}

void print_restore_text(const RestoreArgs& a, const RestoreReport& x) {
  if (x.already_restored) {
    std::printf("%s already holds this restore; nothing to do\n", a.dest.c_str());
    return;
  }
  std::printf("restored %s into %s\n", count_of(x.nodes, "node").c_str(), a.dest.c_str());
  std::printf("  partition files  %llu\n", static_cast<unsigned long long>(x.partition_files));
  std::printf("  segments         %llu (%llu blocks, %llu records, %.1f MiB, io %s)\n",
              static_cast<unsigned long long>(x.segments), static_cast<unsigned long long>(x.blocks),
              static_cast<unsigned long long>(x.records), mib(x.bytes_read),
              x.io_engine.empty() ? "-" : x.io_engine.c_str());
  std::printf("  entries          %llu applied, %llu filtered out\n", static_cast<unsigned long long>(x.entries_applied),
              static_cast<unsigned long long>(x.entries_filtered));
  std::printf("  ATOMIC repaired  %s\n", count_of(x.atomic_repaired, "entry", "entries").c_str());
  if (x.peer_nodes > 0) {
    std::printf("  peers            %s read for their ATOMIC copies (%.1f MiB)\n",
                count_of(x.peer_nodes, "node").c_str(), mib(x.peer_bytes_read));
  }
  std::printf("  memory           %.1f MiB of routed entries at most (limit %.1f MiB), %s (%.1f MiB)\n",
              mib(x.routed_bytes_peak), mib(x.memory_limit), count_of(x.spill_files, "spill file").c_str(),
              mib(x.spilled_bytes));
  if (x.replay_passes > 1) {
    std::printf("  passes           %u over a WAL at most (%.1f MiB read again)\n", x.replay_passes,
                mib(x.reread_bytes));
  }
  std::printf("  time             verify %.3fs, replay %.3fs, finish %.3fs, publish %.3fs\n", x.verify_s, x.replay_s,
              x.finish_s, x.publish_s);
  std::printf("  replay           %.1f MiB/s, %.0f entries/s\n", x.replay_mib_per_s(), x.replay_entries_per_s());
}

// SIGINT, SIGTERM and SIGHUP ask a restore to stop: it ends at its next
// batch or partition, removes its staging directory, publishes nothing,
// and the process exits 128 + the signal's number, as if the signal had
// killed it. The first of them only asks: its handler gives all three
// back to the default (blocked while it runs, so none slips in before),
// and a second one, of any of them, kills at once, as a restore waiting
// for another's lock (--wait) needs.
std::atomic<bool> stop_asked{false};
std::atomic<int> stop_signal{0};
constexpr int kStopSignals[] = {SIGINT, SIGTERM, SIGHUP};
bool stop_handled[std::size(kStopSignals)] = {};  // set before the handler is installed

extern "C" void on_stop_signal(int sig) {
  stop_signal.store(sig);
  stop_asked.store(true);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (size_t i = 0; i < std::size(kStopSignals); ++i) {
    if (stop_handled[i]) ::sigaction(kStopSignals[i], &dfl, nullptr);
  }
}

void stop_on_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int sig : kStopSignals) sigaddset(&sa.sa_mask, sig);
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < std::size(kStopSignals); ++i) {
    struct sigaction old {};
    if (::sigaction(kStopSignals[i], nullptr, &old) == 0 && old.sa_handler == SIG_IGN)
      continue;  // nohup's stays ignored
    stop_handled[i] = true;
    sigaddset(&set, kStopSignals[i]);
  }
  for (size_t i = 0; i < std::size(kStopSignals); ++i) {
    if (stop_handled[i]) ::sigaction(kStopSignals[i], &sa, nullptr);
  }
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);  // one blocked by the caller arrives now
}

int run_restore(const RestoreArgs& a) {
  // A progress reader that goes away (`--progress json 2>&1 | head`) does
  // not kill the restore midway, its staging left behind: the progress
  // lines are lost, and a report that cannot be written is exit 3.
  ::signal(SIGPIPE, SIG_IGN);
  if (Status d = require_directory(a.snapshot); !d.ok()) return fail(d);
  Result<RestoreOptions> o = restore_options(a);
  if (!o.ok()) return fail(o.status());
  ProgressDisplay progress(a.progress);
  o->progress = progress.callback();
  o->cancel = &stop_asked;
  stop_on_signals();
  Result<RestoreReport> r = restore_snapshot(o.value());
  progress.stop();
  if (const int sig = stop_signal.load(); sig != 0 && !r.ok()) {
    const char* name = sigabbrev_np(sig);
    std::fprintf(stderr, "walcut: stopped by SIG%s: nothing was published and the staging directory is removed (%s)\n",
                 name ? name : "?", r.status().to_string().c_str());
    return 128 + sig;
  }
  if (!r.ok()) return fail(r.status());
  if (a.json) {
    std::printf("%s\n", to_json(r.value()).c_str());
  } else if (a.dry_run) {
    print_dry_run(r.value(), a);
  } else {
    print_restore_text(a, r.value());
  }
  return kExitOk;
}

struct CheckArgs {
  std::string snapshot;
  uint64_t increment = 0;
  bool json = false;
  std::string node;
  std::string map_out;
  std::vector<std::string> reduce;
  unsigned threads = 0;
  std::string io = "auto";
  std::string progress = "auto";
};

// `increment`: the one checked, or with --reduce the one the maps were made for.
void print_report(const CheckReport& r, const CheckArgs& a, uint64_t increment) {
  const bool reduced = !a.reduce.empty();
  if (a.json) {
    using json = nlohmann::json;
    json nodes = json::array(), findings = json::array(), not_compared = json::array();
    for (const NodeCheck& n : r.nodes) {
      nodes.push_back({{"node", n.node_id}, {"files", n.files}, {"segments", n.segments}, {"entries", n.entries},
                       {"bytes_read", n.bytes_read}});
    }
    for (const Finding& f : r.findings) {
      findings.push_back({{"kind", f.kind},
                          {"where", f.where},
                          {"detail", f.detail},
                          {"file", f.file.empty() ? json(nullptr) : json(f.file)},
                          {"offset", f.offset ? json(*f.offset) : json(nullptr)}});
    }
    for (const NotCompared& n : r.not_compared) {
      not_compared.push_back({{"where", n.where}, {"kinds", n.kinds}, {"why", n.why}});
    }
    json j{{"snapshot", reduced ? json(nullptr) : json(a.snapshot)},
           {"increment", increment},
           {"clean", r.clean()},
           {"nodes", nodes},
           {"findings", findings},
           {"not_compared", not_compared},
           {"seconds", r.seconds},
           {"bytes_read", r.bytes_read}};
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  const std::string what = reduced ? "the maps of " + count_of(r.nodes.size(), "node") : a.snapshot;
  std::printf("checked %s%s\n", what.c_str(),
              increment ? (" with increments 1.." + std::to_string(increment)).c_str() : " (full snapshot)");
  for (const NodeCheck& n : r.nodes) {
    std::printf("  %-12s %s, %s, %s\n", n.node_id.c_str(), count_of(n.files, "partition file").c_str(),
                count_of(n.segments, "segment").c_str(), count_of(n.entries, "entry", "entries").c_str());
  }
  for (const Finding& f : r.findings) std::printf("%s: %s: %s\n", f.kind.c_str(), f.where.c_str(), f.detail.c_str());
  for (const NotCompared& n : r.not_compared) {
    std::string kinds;
    for (const std::string& k : n.kinds) kinds += (kinds.empty() ? "" : ", ") + k;
    std::printf("not compared: %s: %s (%s)\n", n.where.c_str(), kinds.c_str(), n.why.c_str());
  }
  const std::string verdict = r.clean() ? "clean" : count_of(r.findings.size(), "problem") + " found";
  std::printf("%s (%.1f MiB read in %.2f s)\n", verdict.c_str(), mib(r.bytes_read), r.seconds);
}

int run_check(const CheckArgs& a) {
  if (!a.snapshot.empty()) {
    if (Status d = require_directory(a.snapshot); !d.ok()) return fail(d);
  }
  CheckOptions o;
  o.snapshot_dir = a.snapshot;
  if (a.increment > 0) o.increment = a.increment;
  o.threads = a.threads;
  o.io.engine = io_engine_of(a.io);
  ProgressDisplay progress(a.reduce.empty() ? a.progress : "none");
  o.progress = progress.callback();
  if (!a.map_out.empty()) {  // the map of one node, to a file
    if (a.node.empty()) return fail(Status::invalid_argument("--map-out needs --node"));
    if (path_is_within(a.map_out, a.snapshot)) {  // it would overwrite what it checks
      return fail(Status::invalid_argument("--map-out " + a.map_out + ": inside the snapshot " + a.snapshot +
                                           "; write the map outside it"));
    }
    Result<NodeCheck> c = map_node(o, a.node);
    progress.stop();
    if (!c.ok()) return fail(c.status());
    Status s = write_file_synced(a.map_out, as_bytes(node_check_to_json(c.value()) + "\n"));
    if (!s.ok()) return fail(s);
    std::printf("map of %s written to %s (%s)\n", a.node.c_str(), a.map_out.c_str(),
                count_of(c->findings.size(), "finding").c_str());
    return kExitOk;
  }
  Result<CheckReport> r = Status::invalid_argument("nothing to check");
  uint64_t increment = a.increment;
  if (!a.reduce.empty()) {
    std::vector<NodeCheck> maps;
    for (const std::string& f : a.reduce) {
      Result<Bytes> text = read_file_bytes(f);
      if (!text.ok()) return fail(text.status());
      Result<NodeCheck> c = node_check_from_json(to_string(text.value()), f);
      if (!c.ok()) return fail(c.status());
      for (size_t i = 0; i < maps.size(); ++i) {  // counted twice, a node would hide a missing one
        if (maps[i].node_id == c->node_id) {
          return fail(Status::invalid_argument(f + ": a second map of " + c->node_id + " (the first: " + a.reduce[i] +
                                               "); reduce one map per node"));
        }
      }
      if (!maps.empty() && c->increment != maps.front().increment) {  // their hashes cover different changes
        return fail(Status::invalid_argument(f + ": a map of increment " + std::to_string(c->increment) + ", and " +
                                             a.reduce.front() + " of increment " +
                                             std::to_string(maps.front().increment) +
                                             "; reduce maps made for the same increment"));
      }
      maps.push_back(std::move(c).value());
    }
    increment = maps.front().increment;
    r = reduce_checks(std::move(maps));
  } else {
    r = check_snapshot(o);
  }
  progress.stop();
  if (!r.ok()) return fail(r.status());
  print_report(r.value(), a, increment);
  return r->clean() ? kExitOk : kExitFindings;
}

}  // namespace

void add_snapshot_commands(CLI::App& app, int& exit_code) {
  CLI::App* snap = app.add_subcommand("snapshot", "Inspect, restore and check snapshots");
  snap->require_subcommand(1);
  add_snapshot_info_command(*snap, exit_code);
  auto a = std::make_shared<RestoreArgs>();
  CLI::App* r = snap->add_subcommand("restore", "Restore a full snapshot and increments 1..N into a new cluster directory");
  r->add_option("SNAPSHOT_DIR", a->snapshot, "The snapshot: <snapshots>/<name>")->required();
  r->add_option("--increment", a->increment, "Restore up to this increment (0: the full snapshot alone)")
      ->check(whole_number(0, kMaxIncrement))
      ->capture_default_str();
  r->add_option("--dest", a->dest, "The cluster directory to create")->required();
  r->add_option("--groups", a->groups, "Only these cache groups, comma-separated (in any order)")
      ->delimiter(',')
      ->type_name("A,B,...")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)  // --groups may be given again
      ->allow_extra_args(false);  // SNAPSHOT_DIR after --groups A,B is the snapshot, not a group
  r->add_option("--node", a->node, "Only this node's part")->check(not_empty());
  r->add_option("--threads", a->threads, "Threads (0: every core)")
      ->check(whole_number(0, kMaxThreads))
      ->capture_default_str();
  r->add_option("--memory-limit", a->memory_limit,
                "Routed entries held in memory before they spill to the staging directory, e.g. 96M "
                "(default: half of the smaller of physical memory and the cgroup's limit)")
      ->check(not_empty());
  r->add_option("--max-passes", a->max_passes,
                "Times a node's WAL may be read, past the memory limit, before the rest is spilled (1: once)")
      ->check(whole_number(1, 100))
      ->capture_default_str();
  add_io_engine_flag(*r, a->io);
  r->add_flag("--direct", a->direct, "Read segments with O_DIRECT where the filesystem allows it");
  a->read_sizes.add_to(*r, "io_uring reads in flight, shared by the nodes replayed at once");
  r->add_flag("--json", a->json, "JSON report");
  r->add_flag("--wait", a->wait, "Wait while another walcut process restores into DEST (else fail at once: busy)");
  add_progress_flags(*r, a->progress);
  r->add_flag("--dry-run", a->dry_run,
              "Read and verify everything the restore would read (manifests, partition files, the increment chain, "
              "the cut records, every segment's blocks up to its FINISH and the entries of their DATA records) and "
              "report what it would restore; write nothing, DEST included. TX records' write lists, which a restore "
              "does not use, are not decoded: wal dump decodes them");
  add_group_read_flag(*r);
  r->callback([a, &exit_code] { exit_code = run_restore(*a); });

  auto c = std::make_shared<CheckArgs>();
  CLI::App* k = snap->add_subcommand("check", "Check a snapshot: manifests, segment continuity, partition and "
                                              "transaction hashes. Exit 0 clean, 1 problems found, 3 cannot check");
  CLI::Option* snapshot_dir = k->add_option("SNAPSHOT_DIR", c->snapshot, "The snapshot: <snapshots>/<name>");
  CLI::Option* increment = k->add_option("--increment", c->increment, "Also check increments 1..N")
                               ->check(whole_number(0, kMaxIncrement))
                               ->capture_default_str();
  k->add_flag("--json", c->json, "JSON report");
  k->add_option("--node", c->node, "With --map-out: map only this node");
  k->add_option("--map-out", c->map_out, "Write this node's map to a file instead of checking");
  k->add_option("--reduce", c->reduce,
                "Reduce map files written by --map-out (their increment is the one they were made for)")
      ->expected(1, -1)
      ->excludes(snapshot_dir)
      ->excludes(increment);
  k->add_option("--threads", c->threads, "Threads (0: every core)")
      ->check(whole_number(0, kMaxThreads))
      ->capture_default_str();
  add_io_engine_flag(*k, c->io);
  add_progress_flags(*k, c->progress);
  add_group_read_flag(*k);
  k->callback([c, &exit_code] {
    if (c->snapshot.empty() && c->reduce.empty()) {
      exit_code = fail(Status::invalid_argument("SNAPSHOT_DIR or --reduce is required"));
      return;
    }
    exit_code = run_check(*c);
  });
}

}  // namespace walcut::cli
