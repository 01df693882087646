#include "tools/gen_command.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "tools/cli_util.h"
#include "tools/sim/simulator.h"

namespace walcut::cli {

namespace {
constexpr uint64_t kMaxU64 = ~uint64_t{0};

// The flags of `gen`: the simulator's options and the ones given in other units.
struct GenArgs {
  sim::Options o;
  std::string codec = "none";
  std::string dist = "uniform";
  uint64_t segment_mib = 4;
  std::string wal_mode = "buffered";
  bool wal_mode_given = false;  // else log-only with crashes, buffered without
};

void add_gen_options(CLI::App* g, GenArgs& a) {
  sim::Options* o = &a.o;
  std::string* codec = &a.codec;
  std::string* dist = &a.dist;
  uint64_t* segment_mib = &a.segment_mib;
  std::string* wal_mode = &a.wal_mode;
  g->add_option("--out", o->out, "Output directory (must not exist or be empty)")->required();
  g->add_option("--seed", o->seed, "Seed: the same seed gives the same bytes")
      ->check(whole_number(0, kMaxU64))
      ->capture_default_str();
  g->add_option("--nodes", o->nodes, "Nodes in the baseline")->check(whole_number(1, 1000))->capture_default_str();
  g->add_option("--groups", o->groups, "TRANSACTIONAL cache groups")
      ->check(whole_number(0, 1000))
      ->capture_default_str();
  g->add_option("--atomic-groups", o->atomic_groups, "ATOMIC cache groups")
      ->check(whole_number(0, 1000))
      ->capture_default_str();
  g->add_option("--partitions", o->partitions, "Partitions per group")
      ->check(whole_number(1, 65535))
      ->capture_default_str();
  g->add_option("--backups", o->backups, "Backups per partition")->check(whole_number(0, 100))->capture_default_str();
  g->add_option("--keys", o->keys, "Distinct keys per group")
      ->check(whole_number(1, 1ull << 40))
      ->capture_default_str();
  g->add_option("--key-dist", *dist, "Key distribution")->check(CLI::IsMember({"uniform", "zipf"}))->capture_default_str();
  g->add_option("--value-bytes", o->value_bytes, "Bytes per value")
      ->check(whole_number(0, 1 << 20))
      ->capture_default_str();
  g->add_option("--txs", o->txs, "Transactions to run")->check(whole_number(0, 1000000000000))->capture_default_str();
  g->add_option("--tx-size", o->tx_size, "Writes per transaction: 1 to this")
      ->check(whole_number(1, 10000))
      ->capture_default_str();
  g->add_option("--in-flight", o->in_flight, "Transactions in flight at once")
      ->check(whole_number(1, 100000))
      ->capture_default_str();
  g->add_option("--increments", o->increments, "Incremental snapshots after the full one")
      ->check(whole_number(0, 1000))
      ->capture_default_str();
  g->add_option("--codec", *codec, "WAL block codec")->check(CLI::IsMember({"none", "lz4"}))->capture_default_str();
  g->add_option("--cut-delay-max-ms", o->cut_delay_max_ms,
                "A node's START message arrives up to this many simulated ms late")
      ->check(whole_number(0, 3600000))
      ->capture_default_str();
  g->add_option("--wal-mode", *wal_mode,
                "buffered: the WAL writers fill 64 KiB blocks across appends, as a busy node's group commit does; "
                "log-only: every append is written at once (one block per append in this one-thread simulation)")
      ->check(CLI::IsMember({"buffered", "log-only"}))
      ->capture_default_str();
  g->add_option("--segment-mib", *segment_mib, "WAL segment size in MiB")
      ->check(whole_number(1, 1024))
      ->capture_default_str();
  g->add_option("--rollback-percent", o->rollback_percent, "Transactions rolled back")
      ->check(whole_number(0, 100))
      ->capture_default_str();
  g->add_option("--checkpoints", o->checkpoints, "Checkpoints spread over the run")
      ->check(whole_number(0, 1000))
      ->capture_default_str();
  g->add_option("--crash-rate", o->crash_rate,
                "Node crashes per 10000 delivery steps (0: none); a crashed node restarts later. "
                "Needs --wal-mode log-only, the default with crashes")
      ->check(whole_number(0, 10000))
      ->capture_default_str();
  g->add_option("--cluster-crash-rate", o->cluster_crash_rate,
                "Crashes of every node at once per 10000 delivery steps (0: none); the cluster reopens at once and "
                "resolves the transactions in flight from the WALs. Needs --wal-mode log-only, the default with crashes")
      ->check(whole_number(0, 10000))
      ->capture_default_str();
  g->add_option("--restart-after-ms", o->restart_max_ms, "A crashed node restarts up to this many simulated ms later")
      ->check(whole_number(0, 3600000))
      ->capture_default_str();
  g->add_option("--message-loss", o->message_loss,
                "Percent of deliveries lost; the sender sends the message again later")
      ->check(whole_number(0, 50))
      ->capture_default_str();
  g->add_option("--message-dup", o->message_dup, "Percent of deliveries duplicated; the copy is dropped on arrival")
      ->check(whole_number(0, 100))
      ->capture_default_str();
}

int run_gen(GenArgs a) {
  sim::Options& o = a.o;
  o.codec = *parse_codec(a.codec);
  // With crashes a node must not lose acknowledged commits in an open block.
  const bool crashes = o.crash_rate > 0 || o.cluster_crash_rate > 0;
  o.fill_blocks = a.wal_mode_given ? a.wal_mode == "buffered" : !crashes;
  o.key_dist = a.dist == "zipf" ? sim::KeyDist::kZipf : sim::KeyDist::kUniform;
  o.segment_bytes = a.segment_mib << 20;
  bool tty = ::isatty(STDERR_FILENO);
  // What a failed run wrote (a full disk, say) is removed: the three
  // names it writes under --out, then --out when the run made it and it
  // is empty (what another process put there stays). An --out that held
  // anything is refused by the run and left as it was, as is --out after
  // any usage error (found before anything is written).
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool existed = fs::exists(fs::symlink_status(o.out, ec));  // a dangling link exists
  const bool was_empty = !existed || fs::is_empty(o.out, ec);
  Result<sim::Report> r = sim::run(o, [tty](const std::string& s) {
    if (tty) std::fprintf(stderr, "walcut gen: %s\n", s.c_str());
  });
  if (!r.ok()) {
    if (r.status().code() != StatusCode::kInvalidArgument && was_empty) {
      for (const char* name : {"cluster", "snapshots", "history.jsonl"}) fs::remove_all(fs::path(o.out) / name, ec);
      if (!existed) fs::remove(o.out, ec);  // an rmdir: only when empty
    }
    return fail(r.status());
  }
  std::printf("committed %llu, rolled back %llu, atomic updates %llu, messages %llu\n",
              static_cast<unsigned long long>(r->committed), static_cast<unsigned long long>(r->rolled_back),
              static_cast<unsigned long long>(r->atomic_updates), static_cast<unsigned long long>(r->messages));
  std::printf("increments %llu (included %llu, excluded %llu over all nodes)\n",
              static_cast<unsigned long long>(r->increments), static_cast<unsigned long long>(r->included),
              static_cast<unsigned long long>(r->excluded));
  if (o.faults()) {
    std::printf("faults: %llu crashes, %llu of the whole cluster, %llu transactions recovered, %llu messages lost, "
                "%llu duplicated, %llu increments failed\n",
                static_cast<unsigned long long>(r->crashes), static_cast<unsigned long long>(r->cluster_crashes),
                static_cast<unsigned long long>(r->recovered), static_cast<unsigned long long>(r->messages_lost),
                static_cast<unsigned long long>(r->messages_duplicated),
                static_cast<unsigned long long>(r->failed_increments));
  }
  std::printf("WAL %.1f MiB in %.1f s (%.1f MiB/s)\n", static_cast<double>(r->wal_bytes) / (1 << 20), r->seconds,
              static_cast<double>(r->wal_bytes) / (1 << 20) / std::max(r->seconds, 1e-9));
  return kExitOk;
}

}  // namespace

void add_gen_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<GenArgs>();
  CLI::App* g = app.add_subcommand("gen", "Simulate a cluster deterministically and write its files: "
                                          "cluster/, snapshots/ (full snapshot and increments), history.jsonl");
  add_gen_options(g, *a);
  add_group_read_flag(*g);
  g->callback([a, g, &exit_code] {
    a->wal_mode_given = g->count("--wal-mode") > 0;
    exit_code = run_gen(*a);
  });
}

}  // namespace walcut::cli
