// Messenger: every message between the nodes of a Cluster passes here, so
// a protocol can piggyback on all of them (the consistent cut stamps its id
// on transaction messages) and a simulation can delay and reorder them.
#pragma once

#include <cstdint>
#include <deque>
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
  kCutStart,  // the snapshot coordinator's START(cut id)
};
const char* message_kind_name(MessageKind k);
bool is_request(MessageKind k);

struct Message {
  MessageKind kind = MessageKind::kPrepareRequest;
  uint16_t from = 0;
  uint16_t to = 0;
  bool forwarded = false;      // a primary's request to a backup, or its answer
  Version xid;                 // the transaction, or the atomic update's version
  Version version;             // the commit or update version
  uint64_t cut_id = 0;         // piggybacked: the sender's newest cut id
  uint64_t tx_cut_id = 0;      // the cut id the coordinator knew when it decided to commit
  std::vector<TxParticipant> participants;
  std::vector<TxWrite> writes;
  Status status;               // in responses
  uint64_t not_before = 0;     // simulation time before which it may not be delivered
  uint64_t id = 0;             // set by send(): 1, 2, ...; a copy keeps it, so a transport can drop duplicates
};

// Carries messages. Immediate delivery (the default) hands each message to
// the handler on the sender's thread, so a chain of messages completes
// before send() returns. Queued delivery keeps them until deliver() picks
// one, for a simulation that decides the order.
class Messenger {
 public:
  using Handler = std::function<void(const Message&)>;
  // Sees each message when it is sent; may stamp it.
  using Stamp = std::function<void(Message&)>;

  void set_handler(Handler h) { handler_ = std::move(h); }
  void set_stamp(Stamp s) { stamp_ = std::move(s); }
  void set_queued(bool queued) { queued_ = queued; }
  bool queued() const { return queued_; }

  void send(Message m);
  // Queued delivery: the messages sent and not yet delivered, oldest first.
  const std::deque<Message>& pending() const { return pending_; }
  std::deque<Message>& pending() { return pending_; }
  // Delivers pending()[i]. Messages it causes are queued behind the others.
  void deliver(size_t i);
  uint64_t messages_sent() const;

 private:
  Handler handler_;
  Stamp stamp_;
  bool queued_ = false;
  std::deque<Message> pending_;
  mutable std::mutex mu_;
  uint64_t sent_ = 0;
};

}  // namespace walcut
