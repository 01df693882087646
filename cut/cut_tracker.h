// A node's side of the consistent cut (docs/consistent-cut.md). The node
// learns of cut `id` from the coordinator's START message or from any
// transaction message stamped with it, whichever comes first: it then logs
// INC_SNAPSHOT_START and stamps `id` on what it sends. Transactions
// prepared here and not finished at that moment are waited for: one that
// commits with the new cut id goes to the excluded set, any other to the
// included set. When none is left the node logs INC_SNAPSHOT_FINISH and
// rolls its WAL segment over.
//
// The tracker holds that state; the node owns one, calls it from its 2PC
// steps and does the WAL appends it asks for, under its own locks.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "io/records.h"
#include "io/status.h"
#include "io/wal_format.h"

namespace walcut {

// A node's cut: where its START and FINISH records are, and the sets FINISH holds.
struct CutResult {
  uint64_t cut_id = 0;
  WalPointer start;
  WalPointer finish;
  std::vector<Version> included;  // sorted once finished
  std::vector<Version> excluded;  // sorted once finished
};

class CutTracker {
 public:
  // `node_id` names the node in messages; `last_cut_id` is the newest cut it finished before.
  void reset(std::string node_id, uint64_t last_cut_id);

  // The newest cut id the node knows.
  uint64_t cut_id() const;
  // Whether a cut started here has not finished yet.
  bool running() const;
  // A restarted node learns the newest cut id the cluster has started,
  // without taking part in that cut: it logs no START for it. Ignored while
  // a cut runs here or when `id` is not newer.
  void adopt(uint64_t id);
  // What a message the node sends carries: the newer of `carried` and cut_id().
  uint64_t stamp(uint64_t carried) const;

  // A transaction prepared here; it is active until tx_finished().
  void tx_prepared(const Version& xid);
  // A transaction committed or rolled back here, under the cut id its coordinator decided with.
  void tx_finished(const Version& xid, bool committed, uint64_t tx_cut_id);

  // Whether cut `id` is newer than the one the node knows; an error if
  // it is while the node's running cut has not finished.
  Result<bool> is_new(uint64_t id) const;
  // Starts cut `id` if it is new: `log_start` appends its START record,
  // with commits held, and the active transactions become the ones to wait for.
  using LogStart = std::function<Result<WalPointer>()>;
  Status start(uint64_t id, const LogStart& log_start);
  // Once no transaction is left to wait for, calls `log_finish` with the
  // FINISH record (outside the tracker's lock) and finishes the cut at the
  // pointer it returns. A failure fails every wait_cut().
  using LogFinish = std::function<Result<WalPointer>(const IncSnapshotFinishRecord&)>;
  Status finish_cut_if_ready(const LogFinish& log_finish);

  // The finished cut `id`, once its FINISH record is logged.
  std::optional<CutResult> finished_cut(uint64_t id) const;
  // Waits until cut `id` is finished (or logging one of its records failed).
  Result<CutResult> wait_cut(uint64_t id) const;

 private:
  Status running_error(uint64_t id) const;  // mu_ held
  bool finished_locked(uint64_t id) const;  // mu_ held

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::string node_id_;
  uint64_t cut_id_ = 0;
  bool running_ = false;
  bool finishing_ = false;
  std::set<Version> active_;   // prepared here, not finished
  std::set<Version> waiting_;  // active when the running cut started
  CutResult cut_;              // the running or last finished cut
  Status error_;
};

// The id of a new cut: newer than any of `known` (each node's newest).
uint64_t next_cut_id(std::span<const uint64_t> known);

}  // namespace walcut
