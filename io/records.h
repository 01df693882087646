// Record payloads: what each WAL record type carries, and its encoding.
// docs/wal-format.md has the byte tables. Decoding returns views into the
// payload bytes (keys, values), so a decoded record lives only as long as
// the block it came from.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "io/coding.h"
#include "io/status.h"
#include "io/wal_format.h"

namespace walcut {

// A write or transaction version, ordered like Ignite's GridCacheVersion:
// topology version, then order, then node order.
struct Version {
  uint32_t topology_version = 0;
  uint32_t node_order = 0;
  uint64_t order = 0;

  friend auto operator<=>(const Version& a, const Version& b) {
    if (auto c = a.topology_version <=> b.topology_version; c != 0) return c;
    if (auto c = a.order <=> b.order; c != 0) return c;
    return a.node_order <=> b.node_order;
  }
  friend bool operator==(const Version&, const Version&) = default;
  bool is_null() const { return topology_version == 0 && node_order == 0 && order == 0; }
  std::string to_string() const;  // "<topVer>.<order>.<nodeOrder>"
};
inline constexpr size_t kVersionBytes = 16;

enum class EntryOp : uint8_t { kCreate = 1, kUpdate = 2, kDelete = 3 };
const char* entry_op_name(EntryOp op);

// A version as 16 bytes: u32 topology version, u32 node order, u64 order.
void put_version(Encoder& e, const Version& v);
inline Version get_version(Decoder& d) {
  Version v;
  v.topology_version = d.u32();
  v.node_order = d.u32();
  v.order = d.u64();
  return v;
}
// The same, from 16 bytes the caller has bounds-checked.
inline Version load_version(const std::byte* p) { return {load_u32(p), load_u32(p + 4), load_u64(p + 8)}; }
inline void store_version(std::byte* p, const Version& v) {
  store_u32(p, v.topology_version);
  store_u32(p + 4, v.node_order);
  store_u64(p + 8, v.order);
}

// One key-value change. `near_xid` is the version of the transaction that
// made it (null for an atomic update). `value` is empty for kDelete.
struct DataEntry {
  uint32_t group_id = 0;
  uint16_t partition = 0;
  EntryOp op = EntryOp::kUpdate;
  Version write_version;
  Version near_xid;
  ByteSpan key;
  ByteSpan value;
};
inline constexpr size_t kDataEntryFixedBytes = 4 + 2 + 1 + 1 + 2 * kVersionBytes + 4 + 4;

struct DataRecord {
  std::vector<DataEntry> entries;
};

enum class TxState : uint8_t { kPrepared = 1, kCommitted = 2, kRolledBack = 3 };
const char* tx_state_name(TxState s);

// A primary node and the backups it forwards the transaction's writes to.
struct TxParticipant {
  uint16_t primary = 0;
  std::vector<uint16_t> backups;
  friend bool operator==(const TxParticipant&, const TxParticipant&) = default;
};

struct TxRecord {
  TxState state = TxState::kPrepared;
  Version near_xid;
  // The consistent-cut id the coordinator knew when it decided to commit
  // (0: none yet).
  uint64_t cut_id = 0;
  std::vector<TxParticipant> participants;
  // The transaction's writes to this node's partitions, as a DATA payload
  // (entry count, entries): what PREPARED carries so that the transaction
  // can be committed from the WAL alone. Flagged in the state byte (0x80);
  // a record without it (every record written before) has none.
  bool has_writes = false;
  ByteSpan writes{};
  // A copy of the transaction's last TX record on this node, logged again
  // after a CHECKPOINT for a transaction not yet ended on every node, so
  // that a replay from there finds it: not a change of state. Flagged in
  // the state byte (0x40). Whatever counts or places TX records skips it.
  bool again = false;
};
inline constexpr uint8_t kTxHasWritesFlag = 0x80;
inline constexpr uint8_t kTxAgainFlag = 0x40;

struct CheckpointRecord {
  uint64_t checkpoint_id = 0;
};

struct ClusterSnapshotRecord {
  std::string name;
};

struct IncSnapshotStartRecord {
  uint64_t cut_id = 0;
};

struct IncSnapshotFinishRecord {
  uint64_t cut_id = 0;
  std::vector<Version> included;
  std::vector<Version> excluded;
};

struct SegmentEndRecord {};

using RecordPayload = std::variant<DataRecord, TxRecord, CheckpointRecord, ClusterSnapshotRecord,
                                   IncSnapshotStartRecord, IncSnapshotFinishRecord, SegmentEndRecord>;

// The record type of a payload.
RecordType record_type_of(const RecordPayload& p);

// Encodes a payload (without the record header).
Bytes encode_payload(const RecordPayload& p);
// Appends one DATA entry to a DATA payload being built; the payload starts
// with a u32 entry count that `finish_data_payload` fills in.
void append_data_entry(Bytes& payload, const DataEntry& e);
void finish_data_payload(Bytes& payload, uint32_t entry_count);

// Decodes a payload of type `t`. Fails with kCorruption when the bytes do
// not parse exactly (short, trailing bytes, unknown enum value).
Result<RecordPayload> decode_payload(RecordType t, ByteSpan payload);

// Calls `fn(const DataEntry&)` for each entry of a DATA payload without
// allocating. Stops at the first malformed entry with kCorruption.
template <typename Fn>
Status for_each_data_entry(ByteSpan payload, Fn&& fn);

// One line of text describing a payload, for `walcut wal dump`.
std::string describe_payload(const RecordPayload& p);

// ---- implementation of the template ----
namespace detail {
// The fixed part is taken with one bounds check and read by loads, the
// key and value with another: an entry is decoded once per WAL entry.
inline bool decode_data_entry(Decoder& d, DataEntry& e) {
  const std::byte* p = d.raw(kDataEntryFixedBytes);
  if (p == nullptr) return false;
  e.group_id = load_u32(p);
  e.partition = load_u16(p + 4);
  const auto op = static_cast<uint8_t>(p[6]);
  const auto pad = static_cast<uint8_t>(p[7]);
  e.write_version = load_version(p + 8);
  e.near_xid = load_version(p + 8 + kVersionBytes);
  const uint32_t key_bytes = load_u32(p + 8 + 2 * kVersionBytes);
  const uint32_t value_bytes = load_u32(p + 12 + 2 * kVersionBytes);
  const std::byte* kv = d.raw(size_t{key_bytes} + value_bytes);
  if (kv == nullptr) return false;
  e.key = {kv, key_bytes};
  e.value = {kv + key_bytes, value_bytes};
  if (op < 1 || op > 3 || pad != 0) return false;
  e.op = static_cast<EntryOp>(op);
  return e.op != EntryOp::kDelete || value_bytes == 0;
}
}  // namespace detail

template <typename Fn>
Status for_each_data_entry(ByteSpan payload, Fn&& fn) {
  Decoder d(payload);
  uint32_t n = d.u32();
  bool bad = d.failed();
  for (uint32_t i = 0; i < n && !bad; ++i) {
    DataEntry e;
    bad = !detail::decode_data_entry(d, e);
    if (!bad) fn(static_cast<const DataEntry&>(e));
  }
  if (bad || d.remaining() != 0) return Status::corruption("malformed DATA payload");
  return {};
}

}  // namespace walcut
