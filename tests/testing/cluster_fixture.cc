#include "tests/testing/cluster_fixture.h"

#include <map>

#include "io/block.h"
#include "io/file_util.h"
#include "io/record_reader.h"

namespace walcut::testing {

ClusterOptions small_cluster_options(const std::string& dir, size_t nodes) {
  ClusterOptions o;
  o.dir = dir;
  o.cluster_id = 42;
  for (size_t i = 0; i < nodes; ++i) o.node_ids.push_back("node" + std::to_string(i));
  o.groups = {CacheGroup{1, "accounts", CacheMode::kTransactional, 32, 2},
              CacheGroup{2, "events", CacheMode::kAtomic, 16, 1}};
  o.wal.segment_bytes = 256 << 10;
  o.wal.sync = SyncPolicy::kNone;
  return o;
}

std::string compare_copies(Cluster& c, const Expected& expected) {
  for (const CacheGroup& g : c.meta().groups) {
    auto want_it = expected.find(g.name);
    static const std::map<std::string, std::string> kNone;
    const auto& want = want_it == expected.end() ? kNone : want_it->second;
    for (uint16_t p = 0; p < g.partitions; ++p) {
      for (uint16_t n : c.affinity().owners(g.id, p)) {
        auto parts = c.node(n).share_partitions();
        const EntryMap& have = *parts.at(PartitionId{g.id, p});
        for (const auto& [key, v] : have) {
          auto it = want.find(key);
          if (it == want.end()) return g.name + " key " + key + " on node " + std::to_string(n) + " is not expected";
          if (it->second != v.value) return g.name + " key " + key + " on node " + std::to_string(n) + " has the wrong value";
        }
        for (const auto& [key, value] : want) {
          if (partition_of(g, key) == p && !have.count(key)) {
            return g.name + " key " + key + " is missing on node " + std::to_string(n);
          }
        }
      }
    }
  }
  return "";
}

std::map<PartitionId, EntryMap> replay_node_wal(const std::string& wal_dir, const WalPointer& until) {
  std::map<PartitionId, EntryMap> state;
  std::map<Version, std::vector<std::tuple<PartitionId, std::string, std::optional<std::string>, Version>>> pending;
  auto reader = BlockReader::open(list_segment_files(wal_dir).value(), {});
  Status s = for_each_record(*reader.value(), [&](const Block&, const RecordView& r) {
    if (r.pointer >= until) return Status::cancelled("reached the end point");
    if (r.type == RecordType::kData) {
      return for_each_data_entry(r.payload, [&](const DataEntry& e) {
        std::optional<std::string> v;
        if (e.op != EntryOp::kDelete) v = to_string(e.value);
        auto change = std::make_tuple(PartitionId{e.group_id, e.partition}, to_string(e.key), v, e.write_version);
        if (e.near_xid.is_null()) {
          auto& m = state[std::get<0>(change)];
          if (v) m[std::get<1>(change)] = StoredValue{*v, e.write_version};
          else m.erase(std::get<1>(change));
        } else {
          pending[e.near_xid].push_back(change);
        }
      });
    }
    if (r.type == RecordType::kTx) {
      TxRecord tx = std::get<TxRecord>(decode_payload(r.type, r.payload).value());
      if (tx.state == TxState::kCommitted) {
        for (auto& [pid, key, v, version] : pending[tx.near_xid]) {
          if (v) state[pid][key] = StoredValue{*v, version};
          else state[pid].erase(key);
        }
      }
      if (tx.state != TxState::kPrepared) pending.erase(tx.near_xid);
    }
    return Status{};
  });
  if (!s.ok() && s.code() != StatusCode::kCancelled) throw std::runtime_error(s.to_string());
  return state;
}

}  // namespace walcut::testing
