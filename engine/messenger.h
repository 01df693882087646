// Messenger: every message between the nodes of a Cluster passes here, so
// a protocol can piggyback on all of them (the consistent cut stamps its id
// on transaction messages) and a simulation can observe, delay or reorder
// them.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "engine/node.h"

namespace walcut {

enum class MessageKind : uint8_t {
  kPrepareRequest,
  kPrepareResponse,
  kCommitRequest,
  kCommitResponse,
  kRollbackRequest,
  kRollbackResponse,
  kAtomicUpdateRequest,
  kAtomicUpdateResponse,
};
const char* message_kind_name(MessageKind k);

struct Message {
  MessageKind kind = MessageKind::kPrepareRequest;
  uint16_t from = 0;
  uint16_t to = 0;
  Version xid;                 // the transaction (null for an atomic update)
  Version version;             // the commit or update version
  uint64_t cut_id = 0;         // piggybacked: the sender's current cut id
  uint64_t tx_cut_id = 0;      // the cut id the coordinator knew when it decided to commit
  std::vector<TxParticipant> participants;
  std::vector<TxWrite> writes;
  Status status;               // in responses
};

// Delivers requests to nodes and returns their responses. Requests are
// handled synchronously on the caller's thread; `observe` sees every
// message (request and response) before delivery, and may change its
// cut stamp.
class Messenger {
 public:
  using Handler = std::function<Message(const Message&)>;
  using Observer = std::function<void(Message&)>;

  void set_handler(Handler h) { handler_ = std::move(h); }
  void set_observer(Observer o) { observer_ = std::move(o); }
  // Sends a request and returns the response.
  Message call(Message request);
  uint64_t messages_sent() const;

 private:
  Handler handler_;
  Observer observer_;
  mutable std::mutex mu_;
  uint64_t sent_ = 0;
};

}  // namespace walcut
