#include "tests/testing/cut_checker.h"

#include <map>
#include <set>
#include <stdexcept>

#include "cut/increment.h"
#include "engine/snapshot.h"
#include "io/block.h"
#include "io/block_reader.h"
#include "io/record_reader.h"
#include "io/records.h"

namespace walcut::testing {

namespace {

struct NodeLog {
  WalPointer snapshot;
  std::vector<WalPointer> start, finish;                     // per increment (index 0 = increment 1)
  std::vector<std::set<Version>> included, excluded;
  std::map<Version, WalPointer> committed;                   // xid -> its COMMITTED record
  std::set<Version> prepared;
  std::map<std::pair<uint32_t, std::string>, std::vector<Version>> writers;  // key -> committing xids in WAL order
};

// Restore rules of docs/consistent-cut.md for increment k (1-based) on one node.
bool in_restore(const NodeLog& n, const Version& xid, size_t k) {
  auto it = n.committed.find(xid);
  if (it == n.committed.end()) return false;
  const WalPointer& p = it->second;
  const WalPointer& from = k == 1 ? n.snapshot : n.finish[k - 2];
  if (p < from) return true;
  if (p < n.start[k - 1]) return !n.excluded[k - 1].count(xid);
  if (p < n.finish[k - 1]) return n.included[k - 1].count(xid) > 0;
  return false;
}

NodeLog read_node(const std::string& snapshot_dir, const SnapshotMeta& base, uint64_t increments) {
  NodeLog n;
  n.snapshot = base.snapshot_pointer;
  std::vector<std::string> paths;
  for (uint64_t k = 1; k <= increments; ++k) {
    if (increment_failure(snapshot_dir, k).value()) continue;  // holds nothing: judged by its refusal
    Result<std::vector<IncrementMeta>> metas = read_increment_metas(snapshot_dir, k);
    if (!metas.ok()) throw std::runtime_error(metas.status().to_string());
    for (const IncrementMeta& m : metas.value()) {
      if (m.node_index != base.node_index) continue;
      n.start.push_back(m.start);
      n.finish.push_back(m.finish);
      for (const ManifestEntry& f : m.files) paths.push_back(increment_dir(snapshot_dir, k) + "/" + f.path);
    }
  }
  n.included.resize(n.finish.size());
  n.excluded.resize(n.finish.size());
  if (paths.empty()) return n;  // every increment failed
  BlockReaderOptions o;
  o.mode = TailMode::kStrict;
  auto reader = BlockReader::open(paths, o);
  if (!reader.ok()) throw std::runtime_error(reader.status().to_string());
  std::map<Version, std::vector<std::pair<uint32_t, std::string>>> keys_of;
  Status s = for_each_record(**reader, [&](const Block&, const RecordView& r) -> Status {
    if (r.pointer < n.snapshot) return {};
    if (r.type == RecordType::kData) {
      return for_each_data_entry(r.payload, [&](const DataEntry& e) {
        if (!e.near_xid.is_null()) keys_of[e.near_xid].emplace_back(e.group_id, to_string(e.key));
      });
    }
    if (r.type == RecordType::kIncSnapshotFinish) {
      auto f = std::get<IncSnapshotFinishRecord>(decode_payload(r.type, r.payload).value());
      for (size_t k = 0; k < n.finish.size(); ++k) {
        if (n.finish[k] == r.pointer) {
          n.included[k].insert(f.included.begin(), f.included.end());
          n.excluded[k].insert(f.excluded.begin(), f.excluded.end());
        }
      }
    }
    if (r.type != RecordType::kTx) return {};
    auto tx = std::get<TxRecord>(decode_payload(r.type, r.payload).value());
    if (tx.again) return {};  // a copy after a checkpoint: the first one is where it lies
    if (tx.state == TxState::kPrepared) n.prepared.insert(tx.near_xid);
    if (tx.state == TxState::kCommitted) {
      n.committed[tx.near_xid] = r.pointer;
      for (auto& key : keys_of[tx.near_xid]) n.writers[key].push_back(tx.near_xid);
    }
    if (tx.state != TxState::kPrepared) keys_of.erase(tx.near_xid);
    return {};
  });
  if (!s.ok()) throw std::runtime_error(s.to_string());
  return n;
}

}  // namespace

CutCheck check_increments(const std::string& snapshot_dir) {
  CutCheck out;
  std::vector<SnapshotMeta> bases = read_snapshot_metas(snapshot_dir).value();
  out.increments = increment_count(snapshot_dir).value();
  std::vector<uint64_t> complete;  // the increments judged, in order; position k - 1 in each NodeLog
  for (uint64_t k = 1; k <= out.increments; ++k) {
    if (increment_failure(snapshot_dir, k).value()) {
      ++out.failed;
    } else {
      complete.push_back(k);
    }
  }
  std::vector<NodeLog> nodes;
  for (const SnapshotMeta& b : bases) nodes.push_back(read_node(snapshot_dir, b, out.increments));
  std::set<Version> all;
  for (const NodeLog& n : nodes) {
    for (const auto& [xid, p] : n.committed) all.insert(xid);
  }
  out.transactions = all.size();
  for (size_t k = 1; k <= complete.size(); ++k) {
    const std::string name = "increment " + std::to_string(complete[k - 1]);
    std::set<Version> in;
    for (const Version& xid : all) {
      bool some = false, every = true;
      for (const NodeLog& n : nodes) {
        if (!n.prepared.count(xid) && !n.committed.count(xid)) continue;  // did not touch it
        bool here = in_restore(n, xid, k);
        some = some || here;
        every = every && here;
      }
      if (some != every) {
        out.violation = name + ": transaction " + xid.to_string() +
                        " is restored on some of its nodes and not on others";
        return out;
      }
      if (some) in.insert(xid);
    }
    for (const NodeLog& n : nodes) {
      for (const auto& [key, xids] : n.writers) {
        for (size_t i = 1; i < xids.size(); ++i) {
          if (in.count(xids[i]) && !in.count(xids[i - 1])) {
            out.violation = name + ": transaction " + xids[i].to_string() +
                            " is restored but " + xids[i - 1].to_string() + ", which wrote key " + key.second +
                            " before it, is not";
            return out;
          }
        }
      }
    }
    if (k == complete.size()) out.in_last = in.size();
  }
  return out;
}

}  // namespace walcut::testing
