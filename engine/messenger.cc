#include "engine/messenger.h"

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
  }
  return "?";
}

Message Messenger::call(Message request) {
  if (observer_) observer_(request);
  Message response = handler_(request);
  if (observer_) observer_(response);
  std::lock_guard<std::mutex> lock(mu_);
  sent_ += 2;
  return response;
}

uint64_t Messenger::messages_sent() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sent_;
}

}  // namespace walcut
