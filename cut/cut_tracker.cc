#include "cut/cut_tracker.h"

#include <algorithm>

namespace walcut {

void CutTracker::reset(std::string node_id, uint64_t last_cut_id) {
  std::lock_guard<std::mutex> lock(mu_);
  node_id_ = std::move(node_id);
  cut_id_ = last_cut_id;
}

uint64_t CutTracker::cut_id() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cut_id_;
}

bool CutTracker::running() const {
  std::lock_guard<std::mutex> lock(mu_);
  return running_;
}

void CutTracker::adopt(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!running_ && id > cut_id_) cut_id_ = id;
}

uint64_t CutTracker::stamp(uint64_t carried) const { return std::max(carried, cut_id()); }

void CutTracker::tx_prepared(const Version& xid) {
  std::lock_guard<std::mutex> lock(mu_);
  active_.insert(xid);
}

void CutTracker::tx_finished(const Version& xid, bool committed, uint64_t tx_cut_id) {
  std::lock_guard<std::mutex> lock(mu_);
  active_.erase(xid);
  if (!running_ || waiting_.erase(xid) == 0 || !committed) return;
  (tx_cut_id >= cut_.cut_id ? cut_.excluded : cut_.included).push_back(xid);
}

Status CutTracker::running_error(uint64_t id) const {
  return Status::invalid_argument("node " + node_id_ + ": cut " + std::to_string(id) + " arrived while cut " +
                                  std::to_string(cut_id_) + " is still running");
}

Result<bool> CutTracker::is_new(uint64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (id <= cut_id_) return false;
  if (running_) return running_error(id);
  return true;
}

Status CutTracker::start(uint64_t id, const LogStart& log_start) {
  // START and the active set are taken together, and the new id is
  // published only after START is logged: no commit carrying the new id
  // can land before START on this node.
  std::lock_guard<std::mutex> lock(mu_);
  if (id <= cut_id_) return {};
  if (running_) return running_error(id);
  Result<WalPointer> at = log_start();
  if (!at.ok()) {
    error_ = at.status();
    cv_.notify_all();
    return at.status();
  }
  cut_id_ = id;
  running_ = true;
  waiting_ = active_;
  cut_ = CutResult{id, at.value(), {}, {}, {}};
  return {};
}

Status CutTracker::finish_cut_if_ready(const LogFinish& log_finish) {
  IncSnapshotFinishRecord finish;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!running_ || !waiting_.empty() || finishing_) return {};
    finishing_ = true;
    std::sort(cut_.included.begin(), cut_.included.end());
    std::sort(cut_.excluded.begin(), cut_.excluded.end());
    finish = IncSnapshotFinishRecord{cut_.cut_id, cut_.included, cut_.excluded};
  }
  Result<WalPointer> at = log_finish(finish);
  std::lock_guard<std::mutex> lock(mu_);
  finishing_ = false;
  if (!at.ok()) {
    error_ = at.status();
  } else {
    cut_.finish = at.value();
    running_ = false;
  }
  cv_.notify_all();
  return at.status();
}

bool CutTracker::finished_locked(uint64_t id) const {
  return cut_.cut_id == id && !running_ && cut_.finish != WalPointer{};
}

std::optional<CutResult> CutTracker::finished_cut(uint64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!finished_locked(id)) return std::nullopt;
  return cut_;
}

Result<CutResult> CutTracker::wait_cut(uint64_t id) const {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !error_.ok() || finished_locked(id); });
  if (!error_.ok()) return error_;
  return cut_;
}

uint64_t next_cut_id(std::span<const uint64_t> known) {
  uint64_t newest = 0;
  for (uint64_t id : known) newest = std::max(newest, id);
  return newest + 1;
}

}  // namespace walcut
