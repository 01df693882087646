#include "engine/messenger.h"

#include <cassert>

namespace walcut {

const char* message_kind_name(MessageKind k) {
  switch (k) {
    case MessageKind::kPrepareRequest: return "PrepareRequest";
    case MessageKind::kPrepareResponse: return "PrepareResponse";
    case MessageKind::kCommitRequest: return "CommitRequest";
    case MessageKind::kCommitResponse: return "CommitResponse";
    case MessageKind::kRollbackRequest: return "RollbackRequest";
    case MessageKind::kRollbackResponse: return "RollbackResponse";
    case MessageKind::kAtomicUpdateRequest: return "AtomicUpdateRequest";
    case MessageKind::kAtomicUpdateResponse: return "AtomicUpdateResponse";
    case MessageKind::kCutStart: return "CutStart";
  }
  return "?";
}

bool is_request(MessageKind k) {
  return k == MessageKind::kPrepareRequest || k == MessageKind::kCommitRequest || k == MessageKind::kRollbackRequest ||
         k == MessageKind::kAtomicUpdateRequest || k == MessageKind::kCutStart;
}

void Messenger::send(Message m) {
  if (stamp_) stamp_(m);
  {
    std::lock_guard<std::mutex> lock(mu_);
    m.id = ++sent_;
  }
  if (queued_) {
    pending_.push_back(std::move(m));
  } else {
    handler_(m);
  }
}

void Messenger::deliver(size_t i) {
  assert(queued_ && i < pending_.size());
  Message m = std::move(pending_[i]);
  pending_.erase(pending_.begin() + static_cast<long>(i));
  handler_(m);
}

uint64_t Messenger::messages_sent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sent_;
}

}  // namespace walcut
