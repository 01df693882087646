#include "io/records.h"

#include <cassert>
#include <cstdint>
#include <cstdio>

namespace walcut {

std::string Version::to_string() const {
  return std::to_string(topology_version) + "." + std::to_string(order) + "." + std::to_string(node_order);
}

const char* entry_op_name(EntryOp op) {
  switch (op) {
    case EntryOp::kCreate: return "CREATE";
    case EntryOp::kUpdate: return "UPDATE";
    case EntryOp::kDelete: return "DELETE";
  }
  return "?";
}

const char* tx_state_name(TxState s) {
  switch (s) {
    case TxState::kPrepared: return "PREPARED";
    case TxState::kCommitted: return "COMMITTED";
    case TxState::kRolledBack: return "ROLLED_BACK";
  }
  return "?";
}

RecordType record_type_of(const RecordPayload& p) {
  static constexpr RecordType kTypes[] = {RecordType::kData,           RecordType::kTx,
                                          RecordType::kCheckpoint,     RecordType::kClusterSnapshot,
                                          RecordType::kIncSnapshotStart, RecordType::kIncSnapshotFinish,
                                          RecordType::kSegmentEnd};
  return kTypes[p.index()];
}

void put_version(Encoder& e, const Version& v) {
  e.u32(v.topology_version);
  e.u32(v.node_order);
  e.u64(v.order);
}

namespace {

void put_versions(Encoder& e, const std::vector<Version>& vs) {
  e.u32(static_cast<uint32_t>(vs.size()));
  for (const Version& v : vs) put_version(e, v);
}

std::vector<Version> get_versions(Decoder& d) {
  uint32_t n = d.u32();
  std::vector<Version> vs;
  if (n > d.remaining() / kVersionBytes) {  // a count the bytes cannot hold
    d.bytes(d.remaining() + 1);
    return vs;
  }
  vs.reserve(n);
  for (uint32_t i = 0; i < n; ++i) vs.push_back(get_version(d));
  return vs;
}

struct PayloadEncoder {
  Encoder& e;
  Bytes& out;
  void operator()(const DataRecord& r) {
    for (const DataEntry& entry : r.entries) append_data_entry(out, entry);
    finish_data_payload(out, static_cast<uint32_t>(r.entries.size()));
  }
  void operator()(const TxRecord& r) {
    assert(r.participants.size() <= UINT16_MAX);
    e.u8(static_cast<uint8_t>(static_cast<uint8_t>(r.state) | (r.has_writes ? kTxHasWritesFlag : 0) |
                              (r.again ? kTxAgainFlag : 0)));
    put_version(e, r.near_xid);
    e.u64(r.cut_id);
    e.u16(static_cast<uint16_t>(r.participants.size()));
    for (const TxParticipant& p : r.participants) {
      assert(p.backups.size() <= UINT16_MAX);
      e.u16(p.primary);
      e.u16(static_cast<uint16_t>(p.backups.size()));
      for (uint16_t b : p.backups) e.u16(b);
    }
    if (r.has_writes) e.bytes(r.writes);
  }
  void operator()(const CheckpointRecord& r) { e.u64(r.checkpoint_id); }
  void operator()(const ClusterSnapshotRecord& r) {
    assert(r.name.size() <= UINT16_MAX);
    e.u16(static_cast<uint16_t>(r.name.size()));
    e.bytes(as_bytes(r.name));
  }
  void operator()(const IncSnapshotStartRecord& r) { e.u64(r.cut_id); }
  void operator()(const IncSnapshotFinishRecord& r) {
    e.u64(r.cut_id);
    put_versions(e, r.included);
    put_versions(e, r.excluded);
  }
  void operator()(const SegmentEndRecord&) {}
};

}  // namespace

void append_data_entry(Bytes& payload, const DataEntry& entry) {
  if (payload.empty()) payload.resize(4);  // the entry count, filled in last
  Encoder e(payload);
  e.u32(entry.group_id);
  e.u16(entry.partition);
  e.u8(static_cast<uint8_t>(entry.op));
  e.u8(0);
  put_version(e, entry.write_version);
  put_version(e, entry.near_xid);
  e.u32(static_cast<uint32_t>(entry.key.size()));
  e.u32(static_cast<uint32_t>(entry.value.size()));
  e.bytes(entry.key);
  e.bytes(entry.value);
}

void finish_data_payload(Bytes& payload, uint32_t entry_count) {
  if (payload.empty()) payload.resize(4);
  store_u32(payload.data(), entry_count);
}

Bytes encode_payload(const RecordPayload& p) {
  Bytes out;
  Encoder e(out);
  std::visit(PayloadEncoder{e, out}, p);
  return out;
}

Result<RecordPayload> decode_payload(RecordType t, ByteSpan payload) {
  Decoder d(payload);
  RecordPayload out;
  switch (t) {
    case RecordType::kData: {
      DataRecord r;
      Status s = for_each_data_entry(payload, [&](const DataEntry& e) { r.entries.push_back(e); });
      if (!s.ok()) return s;
      return RecordPayload{std::move(r)};
    }
    case RecordType::kTx: {
      TxRecord r;
      uint8_t state = d.u8();
      r.near_xid = get_version(d);
      r.cut_id = d.u64();
      uint16_t n = d.u16();
      for (uint16_t i = 0; i < n && !d.failed(); ++i) {
        TxParticipant p;
        p.primary = d.u16();
        uint16_t nb = d.u16();
        if (nb > d.remaining() / 2) break;
        for (uint16_t j = 0; j < nb; ++j) p.backups.push_back(d.u16());
        r.participants.push_back(std::move(p));
      }
      r.has_writes = (state & kTxHasWritesFlag) != 0;
      r.again = (state & kTxAgainFlag) != 0;
      state &= static_cast<uint8_t>(~(kTxHasWritesFlag | kTxAgainFlag));
      if (state < 1 || state > 3 || r.participants.size() != n) return Status::corruption("malformed TX payload");
      r.state = static_cast<TxState>(state);
      if (r.has_writes && !d.failed()) {
        r.writes = d.bytes(d.remaining());
        Status s = for_each_data_entry(r.writes, [](const DataEntry&) {});
        if (!s.ok()) return Status::corruption("malformed TX payload: its writes: " + s.message());
      }
      out = std::move(r);
      break;
    }
    case RecordType::kCheckpoint: out = CheckpointRecord{d.u64()}; break;
    case RecordType::kClusterSnapshot: {
      uint16_t n = d.u16();
      out = ClusterSnapshotRecord{to_string(d.bytes(n))};
      break;
    }
    case RecordType::kIncSnapshotStart: out = IncSnapshotStartRecord{d.u64()}; break;
    case RecordType::kIncSnapshotFinish: {
      IncSnapshotFinishRecord r;
      r.cut_id = d.u64();
      r.included = get_versions(d);
      r.excluded = get_versions(d);
      out = std::move(r);
      break;
    }
    case RecordType::kSegmentEnd: out = SegmentEndRecord{}; break;
    default: return Status::corruption("unknown record type " + std::to_string(static_cast<int>(t)));
  }
  if (d.failed() || d.remaining() != 0) {
    return Status::corruption(std::string("malformed ") + record_type_name(t) + " payload");
  }
  return out;
}

namespace {

std::string hex_prefix(ByteSpan b, size_t max_bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < b.size() && i < max_bytes; ++i) {
    auto v = static_cast<uint8_t>(b[i]);
    s += kHex[v >> 4];
    s += kHex[v & 15];
  }
  if (b.size() > max_bytes) s += "..";
  return s;
}

std::string join_versions(const std::vector<Version>& vs) {
  std::string s = "[";
  for (size_t i = 0; i < vs.size(); ++i) {
    if (i > 0) s += ',';
    s += vs[i].to_string();
  }
  s += ']';
  return s;
}

struct Describer {
  std::string operator()(const DataRecord& r) const {
    std::string s = "entries=" + std::to_string(r.entries.size());
    for (const DataEntry& e : r.entries) {
      s += " {grp=" + std::to_string(e.group_id) + " part=" + std::to_string(e.partition) + " " +
           entry_op_name(e.op) + " ver=" + e.write_version.to_string() + " xid=" + e.near_xid.to_string() +
           " key=" + hex_prefix(e.key, 16) + " val=" + std::to_string(e.value.size()) + "B}";
    }
    return s;
  }
  std::string operator()(const TxRecord& r) const {
    std::string s = std::string(tx_state_name(r.state)) + " xid=" + r.near_xid.to_string() +
                    " cut=" + std::to_string(r.cut_id) + " nodes=";
    for (size_t i = 0; i < r.participants.size(); ++i) {
      const TxParticipant& p = r.participants[i];
      if (i > 0) s += ';';
      s += std::to_string(p.primary);
      s += "->";
      for (size_t j = 0; j < p.backups.size(); ++j) {
        if (j > 0) s += ',';
        s += std::to_string(p.backups[j]);
      }
    }
    if (r.has_writes) s += " writes=" + std::to_string(r.writes.size() >= 4 ? load_u32(r.writes.data()) : 0);
    if (r.again) s += " again";
    return s;
  }
  std::string operator()(const CheckpointRecord& r) const { return "id=" + std::to_string(r.checkpoint_id); }
  std::string operator()(const ClusterSnapshotRecord& r) const { return "name=" + r.name; }
  std::string operator()(const IncSnapshotStartRecord& r) const { return "cut=" + std::to_string(r.cut_id); }
  std::string operator()(const IncSnapshotFinishRecord& r) const {
    return "cut=" + std::to_string(r.cut_id) + " included=" + join_versions(r.included) +
           " excluded=" + join_versions(r.excluded);
  }
  std::string operator()(const SegmentEndRecord&) const { return ""; }
};

}  // namespace

std::string describe_payload(const RecordPayload& p) { return std::visit(Describer{}, p); }

}  // namespace walcut
