// The deterministic cluster simulator behind `walcut gen`: drives a real
// Cluster (real WAL, partition and snapshot files) with many transactions
// in flight at once, messages delivered in an order drawn from a seed, one
// full snapshot and incremental snapshots whose START messages reach each
// node after its own random delay. The same options give the same bytes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "io/status.h"
#include "io/wal_format.h"

namespace walcut::sim {

enum class KeyDist { kUniform, kZipf };

struct Options {
  std::string out;                  // DIR: cluster/, snapshots/, history.jsonl
  uint64_t seed = 1;
  uint32_t nodes = 4;
  uint32_t groups = 2;              // TRANSACTIONAL groups
  uint32_t atomic_groups = 1;       // ATOMIC groups
  uint32_t partitions = 64;
  uint32_t backups = 1;
  uint64_t keys = 1000;             // per group
  KeyDist key_dist = KeyDist::kUniform;
  uint32_t value_bytes = 64;
  uint64_t txs = 1000;
  uint32_t tx_size = 4;             // writes per transaction: 1..tx_size
  uint32_t in_flight = 8;           // transactions in flight at once
  uint32_t increments = 2;
  Codec codec = Codec::kNone;
  uint32_t cut_delay_max_ms = 5;    // a node's START arrives up to this late
  uint64_t segment_bytes = 4ull << 20;
  uint32_t rollback_percent = 5;
  uint32_t checkpoints = 4;         // spread over the run
  std::string snapshot_name = "snp";
  // The nodes' WAL writers fill blocks across appends (WriterOptions::
  // fill_blocks), as a busy node's group commit does; off, this one-thread
  // simulation writes one block per append.
  bool fill_blocks = true;
  // Off: messages do not carry the cut id, so a node starts its cut only
  // on START. Wrong on purpose: tests use it to show the checker sees the
  // inconsistency the piggybacked id prevents.
  bool stamp_messages = true;

  // Faults (docs/gen.md, "Faults"), all off by default. With any on, the
  // run also restarts the nodes it crashed and marks failed cuts.
  uint32_t crash_rate = 0;          // node crashes per 10 000 delivery steps
  uint32_t restart_max_ms = 5;      // a crashed node restarts up to this late
  uint32_t message_loss = 0;        // percent of deliveries lost (the sender sends again later)
  uint32_t message_dup = 0;         // percent of deliveries duplicated (the copy is dropped on arrival)
  uint32_t cluster_crash_rate = 0;  // crashes of every node at once per 10 000 delivery steps; all reopen together
  bool faults() const { return crash_rate > 0 || message_loss > 0 || message_dup > 0 || cluster_crash_rate > 0; }
};

struct Report {
  uint64_t committed = 0;
  uint64_t rolled_back = 0;
  uint64_t atomic_updates = 0;
  uint64_t messages = 0;
  uint64_t increments = 0;          // complete ones
  uint64_t failed_increments = 0;
  uint64_t failed_full_snapshots = 0;  // attempts a crash interrupted (each taken again)
  uint64_t crashes = 0;
  uint64_t cluster_crashes = 0;     // the whole cluster at once
  uint64_t recovered = 0;           // transactions resolved by recovery
  uint64_t messages_lost = 0;
  uint64_t messages_duplicated = 0;
  uint64_t included = 0;            // over all increments and nodes
  uint64_t excluded = 0;
  uint64_t wal_bytes = 0;           // segment bytes in the cluster at the end
  double seconds = 0;
};

// Runs the simulation into options.out, which must not exist or be empty.
// `progress` (may be empty) gets a line now and then.
Result<Report> run(const Options& options, const std::function<void(const std::string&)>& progress = {});

// One simulated millisecond in delivery steps: every step delivers one message.
inline constexpr uint64_t kStepsPerMs = 100;
// A lost message is sent again this many steps later, and a duplicate arrives up to this late.
inline constexpr uint64_t kResendSteps = 2 * kStepsPerMs;

}  // namespace walcut::sim
