#include "replay/check.h"

#include <xxhash.h>

#include <nlohmann/json.hpp>
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/parallel_for.h>
#include <boost/unordered/unordered_flat_set.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <set>

#include "engine/affinity.h"
#include "engine/increment.h"
#include "engine/snapshot.h"
#include "io/crc32c.h"
#include "io/file_util.h"
#include "replay/parallel.h"
#include "replay/restore.h"

namespace walcut {

namespace fs = std::filesystem;

namespace {

std::string hex64(uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string where_of(const std::string& node, const CacheGroup& g, uint16_t p) {
  return node + " " + g.name + " partition " + std::to_string(p);
}

const CacheGroup* group_by_id(const std::vector<CacheGroup>& groups, uint32_t id) {
  for (const CacheGroup& g : groups) {
    if (g.id == id) return &g;
  }
  return nullptr;
}

struct VersionHash {
  size_t operator()(const Version& v) const {
    return XXH3_64bits(&v.order, sizeof v.order) ^ (uint64_t{v.topology_version} << 32 | v.node_order);
  }
};
using VersionSet = boost::unordered_flat_set<Version, VersionHash>;

// Increment data of one node, as restore would apply it: hashes per
// partition, per other primary, and which transactions wrote data.
// Partition hashes belong to the stripe that owns the partition; the rest
// is kept per thread and merged once replay ends, so no entry takes a lock.
class CheckSink final : public ReplaySink {
 public:
  explicit CheckSink(NodeCheck& c) : c_(c) {
    Affinity aff(c.groups, c.baseline);
    for (const CacheGroup& g : c.groups) {
      if (g.mode != CacheMode::kTransactional) continue;
      for (uint16_t p = 0; p < g.partitions; ++p) {
        if (aff.owns(g.id, p, c.node_index)) c_.incremental[PartitionId{g.id, p}];  // made now: apply() never inserts
      }
    }
  }
  bool wants_records() const override { return true; }

  Status apply(const ReplayEntry& e) override { return apply_many(e.node_index, std::span(e.entry, 1)); }

  Status apply_many(uint16_t, std::span<const DataEntry> entries) override {
    static const std::string kDeleted = "\xff<deleted>";
    Local& local = local_.local();
    for (const DataEntry& d : entries) {
      auto it = c_.incremental.find(PartitionId{d.group_id, d.partition});
      if (it == c_.incremental.end()) continue;  // ATOMIC groups carry no cut guarantee
      std::string_view key(reinterpret_cast<const char*>(d.key.data()), d.key.size());
      add_to_hashes(it->second, key, d.op == EntryOp::kDelete ? as_bytes(kDeleted) : d.value, d.write_version);
      ++local.entries;
      // A transaction's entries come one after another: insert it once.
      if (!d.near_xid.is_null() && !(d.near_xid == local.last_xid)) {
        local.data_xids.insert(d.near_xid);
        local.last_xid = d.near_xid;
      }
    }
    return {};
  }

  Status on_record(uint16_t, const RecordView& r, bool kept) override {
    if (r.type != RecordType::kTx) return {};
    Result<RecordPayload> p = decode_payload(r.type, r.payload);
    if (!p.ok()) return p.status();
    const TxRecord& tx = std::get<TxRecord>(p.value());
    Local& local = local_.local();
    if (tx.state == TxState::kPrepared) local.prepared.insert(tx.near_xid);
    if (tx.state != TxState::kCommitted || !kept) return {};
    bool primary = std::any_of(tx.participants.begin(), tx.participants.end(),
                               [&](const TxParticipant& t) { return t.primary == c_.node_index; });
    if (!primary) return {};
    std::byte xid[kVersionBytes];
    store_u32(xid, tx.near_xid.topology_version);
    store_u32(xid + 4, tx.near_xid.node_order);
    store_u64(xid + 8, tx.near_xid.order);
    uint64_t h = XXH3_64bits(xid, sizeof xid);
    for (const TxParticipant& t : tx.participants) {
      if (t.primary == c_.node_index) continue;
      local.tx_hash[t.primary] += h;
      ++local.tx_count[t.primary];
    }
    return {};
  }

  // Adds the threads' counts and hashes to the node's; returns the
  // transactions with data but no PREPARED record on this node.
  std::vector<Version> finish() {
    for (Local& l : local_) {
      c_.entries += l.entries;
      for (const auto& [peer, h] : l.tx_hash) c_.tx_hash[peer] += h;
      for (const auto& [peer, n] : l.tx_count) c_.tx_count[peer] += n;
    }
    // Looked up in every thread's sets rather than merged: merging copies
    // hundreds of thousands of versions to find the few that are missing.
    auto prepared = [&](const Version& x) {
      return std::any_of(local_.begin(), local_.end(), [&](const Local& l) { return l.prepared.count(x) > 0; });
    };
    VersionSet missing;
    for (const Local& l : local_) {
      for (const Version& x : l.data_xids) {
        if (!prepared(x)) missing.insert(x);
      }
    }
    std::vector<Version> out(missing.begin(), missing.end());
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  struct Local {
    uint64_t entries = 0;
    Version last_xid;  // the last inserted into data_xids
    VersionSet data_xids, prepared;
    std::map<uint16_t, uint64_t> tx_hash, tx_count;
  };
  NodeCheck& c_;
  tbb::enumerable_thread_specific<Local> local_;
};

void structure(NodeCheck& c, std::string where, std::string detail) {
  c.findings.push_back(Finding{"structure", std::move(where), std::move(detail)});
}

// Files under `dir` (recursively), relative to `base`.
std::set<std::string> files_under(const std::string& base, const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  if (!fs::exists(base + "/" + dir, ec)) return out;
  for (auto it = fs::recursive_directory_iterator(base + "/" + dir, ec); it != fs::recursive_directory_iterator(); ++it) {
    if (it->is_regular_file()) out.insert(fs::relative(it->path(), base).string());
  }
  return out;
}

void check_full_snapshot(const CheckOptions& o, const SnapshotMeta& me, NodeCheck& c) {
  // Every listed file: there, its size, its checksum, the partition it claims.
  std::vector<const ManifestEntry*> files;
  for (const ManifestEntry& f : me.files) files.push_back(&f);
  std::vector<std::optional<PartitionFileScan>> parsed(files.size());
  std::vector<std::string> problems(files.size());
  tbb::parallel_for(size_t{0}, files.size(), [&](size_t i) {
    const std::string path = o.snapshot_dir + "/" + files[i]->path;
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      problems[i] = "listed in the manifest but missing";
      return;
    }
    Result<Bytes> bytes = read_file_bytes(path);
    if (!bytes.ok()) {
      problems[i] = bytes.status().message();
      return;
    }
    if (bytes->size() != files[i]->bytes) {
      problems[i] = std::to_string(bytes->size()) + " bytes, the manifest says " + std::to_string(files[i]->bytes);
      return;
    }
    if (crc32c(bytes.value()) != files[i]->crc32c) {
      problems[i] = "checksum differs from the manifest";
      return;
    }
    // Each block's CRC, the key order and the footer's hashes, recomputed.
    Result<PartitionFileScan> scan = scan_partition_file(path, bytes.value(), nullptr);
    if (!scan.ok()) {
      problems[i] = scan.status().message();
      return;
    }
    parsed[i] = scan.value();
  });
  Affinity aff(me.groups, me.baseline);
  std::set<PartitionId> seen;
  for (size_t i = 0; i < files.size(); ++i) {
    c.bytes_read += files[i]->bytes;
    ++c.files;
    if (!problems[i].empty()) {
      structure(c, o.snapshot_dir + "/" + files[i]->path, problems[i]);
      continue;
    }
    const PartitionFileInfo& info = parsed[i]->info;
    const CacheGroup* g = group_by_id(me.groups, info.group_id);
    std::string expect = g ? "db/" + me.node_id + "/" + g->name + "/" + partition_file_name(info.partition) : "";
    if (!g || info.node_index != me.node_index || files[i]->path != expect) {
      structure(c, o.snapshot_dir + "/" + files[i]->path,
                "holds group " + std::to_string(info.group_id) + " partition " + std::to_string(info.partition) +
                    " of node " + std::to_string(info.node_index) + ", not what its path names");
      continue;
    }
    seen.insert(PartitionId{info.group_id, info.partition});
    c.full[PartitionId{info.group_id, info.partition}] = parsed[i]->hashes;
  }
  // Nothing unlisted, nothing owned left out.
  std::set<std::string> listed;
  for (const ManifestEntry& f : me.files) listed.insert(f.path);
  for (const std::string& f : files_under(o.snapshot_dir, "db/" + me.node_id)) {
    if (!listed.count(f)) structure(c, o.snapshot_dir + "/" + f, "file is not in " + me.node_id + ".smf's manifest");
  }
  for (const CacheGroup& g : me.groups) {
    for (uint16_t p = 0; p < g.partitions; ++p) {
      if (aff.owns(g.id, p, me.node_index) && !seen.count(PartitionId{g.id, p}) &&
          !std::any_of(problems.begin(), problems.end(), [](const std::string& s) { return !s.empty(); })) {
        structure(c, where_of(me.node_id, g, p), "the node holds this partition but the snapshot has no file for it");
      }
    }
  }
}

// Increments 1..N: metadata, segments present and continuous, nothing
// unlisted; then the data, read through the restore pipeline.
void check_increments(const CheckOptions& o, const SnapshotMeta& me, uint64_t n, NodeCheck& c) {
  Result<uint64_t> count = increment_count(o.snapshot_dir);
  if (!count.ok()) return structure(c, o.snapshot_dir, count.status().message());
  if (n > count.value()) {
    return structure(c, o.snapshot_dir, "has " + std::to_string(count.value()) + " increments, " + std::to_string(n) + " asked for");
  }
  uint64_t next_segment = me.snapshot_pointer.segment;
  for (uint64_t k = 1; k <= n; ++k) {
    const std::string dir = increment_dir(o.snapshot_dir, k);
    Result<std::vector<IncrementMeta>> metas = read_increment_metas(o.snapshot_dir, k);
    if (!metas.ok()) return structure(c, dir, metas.status().message());
    auto m = std::find_if(metas->begin(), metas->end(), [&](const IncrementMeta& x) { return x.node_index == me.node_index; });
    if (m == metas->end()) return structure(c, dir, "no metadata for " + me.node_id);
    if (m->node_id != me.node_id || m->cluster_id != me.cluster_id || m->snapshot_name != me.name || m->groups != me.groups) {
      return structure(c, dir + "/" + me.node_id + ".smf", "belongs to another node, cluster or snapshot, or its groups differ");
    }
    if (m->first_segment != next_segment) {
      return structure(c, dir, me.node_id + "'s segments start at " + std::to_string(m->first_segment) + ", expected " +
                                   std::to_string(next_segment) + ": a gap between increments");
    }
    std::set<std::string> listed;
    for (uint64_t s = m->first_segment; s <= m->last_segment; ++s) {
      std::string rel = "wal/" + me.node_id + "/" + segment_file_name(s);
      listed.insert(rel);
      auto f = std::find_if(m->files.begin(), m->files.end(), [&](const ManifestEntry& e) { return e.path == rel; });
      std::error_code ec;
      if (f == m->files.end() || !fs::exists(dir + "/" + rel, ec)) {
        return structure(c, dir + "/" + rel, "segment " + std::to_string(s) + " of " + me.node_id + " is missing");
      }
      if (fs::file_size(dir + "/" + rel, ec) != f->bytes) {
        return structure(c, dir + "/" + rel, "size differs from the manifest");
      }
      ++c.segments;
    }
    for (const std::string& f : files_under(dir, "wal/" + me.node_id)) {
      if (!listed.count(f)) structure(c, dir + "/" + f, "file is not in " + me.node_id + ".smf's manifest");
    }
    next_segment = m->last_segment + 1;
  }
  CheckSink sink(c);
  RestoreOptions ro;
  ro.threads = o.threads;
  ro.io = o.io;
  RestoreReport report;
  Status s = replay_node(o.snapshot_dir, n, me.node_index, sink, ro, report);
  c.bytes_read += report.bytes_read;
  if (!s.ok()) {
    // Half-read hashes would only add false conflicts to the reduce.
    c.incremental.clear();
    c.tx_hash.clear();
    c.tx_count.clear();
    c.increment = 0;
    return structure(c, me.node_id + " increments 1.." + std::to_string(n), s.message());
  }
  for (const Version& x : sink.finish()) {
    c.findings.push_back(Finding{"partially-committed", me.node_id,
                                 "transaction " + x.to_string() + " has data but no PREPARED record"});
  }
}

}  // namespace

Result<NodeCheck> map_node(const CheckOptions& o, const std::string& node_id) {
  Result<std::vector<SnapshotMeta>> metas = read_snapshot_metas(o.snapshot_dir);
  if (!metas.ok()) return metas.status();
  auto me = std::find_if(metas->begin(), metas->end(), [&](const SnapshotMeta& m) { return m.node_id == node_id; });
  if (me == metas->end()) return Status::invalid_argument("--node " + node_id + ": no such node in " + o.snapshot_dir);
  NodeCheck c;
  c.node_index = me->node_index;
  c.node_id = me->node_id;
  c.baseline = me->baseline;
  c.groups = me->groups;
  c.increment = o.increment.value_or(0);
  for (const SnapshotMeta& other : metas.value()) {
    if (other.cluster_id != me->cluster_id || other.baseline != me->baseline || other.groups != me->groups ||
        other.name != me->name) {
      structure(c, o.snapshot_dir + "/" + other.node_id + ".smf", "disagrees with " + node_id + ".smf on cluster, baseline, groups or name");
    }
  }
  if (me->baseline.at(me->node_index) != me->node_id) structure(c, node_id + ".smf", "node index does not match the baseline");
  check_full_snapshot(o, *me, c);
  if (c.increment > 0) check_increments(o, *me, c.increment, c);
  return c;
}

CheckReport reduce_checks(std::vector<NodeCheck> maps) {
  CheckReport r;
  for (const NodeCheck& m : maps) {
    r.findings.insert(r.findings.end(), m.findings.begin(), m.findings.end());
    r.bytes_read += m.bytes_read;
  }
  if (maps.empty()) return r;
  std::map<uint16_t, const NodeCheck*> by_index;
  for (const NodeCheck& m : maps) by_index[m.node_index] = &m;
  for (size_t i = 0; i < maps.front().baseline.size(); ++i) {
    if (!by_index.count(static_cast<uint16_t>(i))) {
      r.findings.push_back(Finding{"structure", maps.front().baseline[i],
                                   "a node of the baseline with no metadata or map: its copies were not checked"});
    }
  }
  Affinity aff(maps.front().groups, maps.front().baseline);
  auto compare = [&](const char* kind, const CacheGroup& g, uint16_t p, auto field) {
    const std::vector<uint16_t>& owners = aff.owners(g.id, p);
    auto primary = by_index.find(owners.front());
    if (primary == by_index.end()) return;
    const auto& pmap = primary->second->*field;
    auto ph = pmap.find(PartitionId{g.id, p});
    if (ph == pmap.end()) return;
    for (size_t i = 1; i < owners.size(); ++i) {
      auto backup = by_index.find(owners[i]);
      if (backup == by_index.end()) continue;
      const auto& bmap = backup->second->*field;
      auto bh = bmap.find(PartitionId{g.id, p});
      if (bh == bmap.end() || bh->second == ph->second) continue;
      r.findings.push_back(Finding{
          kind, g.name + " partition " + std::to_string(p),
          "primary " + primary->second->node_id + " has " + std::to_string(ph->second.entries) + " entries, kv " +
              hex64(ph->second.key_value_hash) + ", versions " + hex64(ph->second.version_hash) + "; backup " +
              backup->second->node_id + " has " + std::to_string(bh->second.entries) + " entries, kv " +
              hex64(bh->second.key_value_hash) + ", versions " + hex64(bh->second.version_hash)});
    }
  };
  for (const CacheGroup& g : maps.front().groups) {
    for (uint16_t p = 0; p < g.partitions; ++p) {
      compare("partition", g, p, &NodeCheck::full);
      if (g.mode == CacheMode::kTransactional) compare("increment-partition", g, p, &NodeCheck::incremental);
    }
  }
  for (const NodeCheck& a : maps) {
    if (a.increment == 0) continue;
    for (const NodeCheck& b : maps) {
      if (b.node_index <= a.node_index || b.increment == 0) continue;
      auto get = [](const std::map<uint16_t, uint64_t>& m, uint16_t k) {
        auto it = m.find(k);
        return it == m.end() ? uint64_t{0} : it->second;
      };
      uint64_t ab = get(a.tx_hash, b.node_index), ba = get(b.tx_hash, a.node_index);
      if (ab != ba) {
        r.findings.push_back(Finding{"transactions", a.node_id + " <-> " + b.node_id,
                                     a.node_id + " committed " + std::to_string(get(a.tx_count, b.node_index)) +
                                         " transactions as a primary with " + b.node_id + " (hash " + hex64(ab) + "), " +
                                         b.node_id + " " + std::to_string(get(b.tx_count, a.node_index)) + " with " +
                                         a.node_id + " (hash " + hex64(ba) + ")"});
      }
    }
  }
  r.nodes = std::move(maps);
  return r;
}

Result<CheckReport> check_snapshot(const CheckOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<tbb::global_control> limit;
  if (o.threads > 0) limit = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, o.threads);
  Result<std::vector<SnapshotMeta>> metas = read_snapshot_metas(o.snapshot_dir);
  if (!metas.ok()) return metas.status();
  // Nodes are mapped side by side, at most one per thread at a time.
  const std::vector<SnapshotMeta>& all = metas.value();
  std::vector<std::optional<Result<NodeCheck>>> results(all.size());
  for_each_in_waves(all.size(), thread_count(o.threads), [&](size_t i) { results[i] = map_node(o, all[i].node_id); });
  std::vector<NodeCheck> maps;
  for (auto& c : results) {
    if (!c->ok()) return c->status();
    maps.push_back(std::move(*c).value());
  }
  CheckReport r = reduce_checks(std::move(maps));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// ---- Map files

std::string node_check_to_json(const NodeCheck& c) {
  using json = nlohmann::json;
  auto hashes = [](const std::map<PartitionId, PartitionHashes>& m) {
    json a = json::array();
    for (const auto& [pid, h] : m) a.push_back({pid.first, pid.second, h.entries, h.key_value_hash, h.version_hash});
    return a;
  };
  json groups = json::array();
  for (const CacheGroup& g : c.groups) groups.push_back({g.id, g.name, static_cast<int>(g.mode), g.partitions, g.backups});
  json findings = json::array();
  for (const Finding& f : c.findings) findings.push_back({f.kind, f.where, f.detail});
  json tx = json::array();
  for (const auto& [peer, h] : c.tx_hash) tx.push_back({peer, h, c.tx_count.at(peer)});
  json j{{"format", "walcut-check-map-1"}, {"node_index", c.node_index}, {"node_id", c.node_id},
         {"increment", c.increment},       {"baseline", c.baseline},     {"groups", groups},
         {"findings", findings},           {"full", hashes(c.full)},     {"incremental", hashes(c.incremental)},
         {"tx", tx},                       {"files", c.files},           {"segments", c.segments},
         {"entries", c.entries},           {"bytes_read", c.bytes_read}};
  return j.dump();
}

namespace {

using json = nlohmann::json;

// Field `i` of a JSON array of exactly `n` fields. operator[] alone reads
// past the end of a short array.
const json& field(const json& a, size_t i, size_t n) {
  if (!a.is_array() || a.size() != n) {
    throw json::type_error::create(302, "an array of " + std::to_string(n) + " fields expected, got " + a.dump(), nullptr);
  }
  return a[i];
}

// A non-negative integer that fits T. get<T>() alone converts a negative
// or too large a number without a word, and a float out of T's range is
// undefined behaviour.
template <typename T>
T number(const json& v) {
  if (!v.is_number_unsigned() || v.get<uint64_t>() > std::numeric_limits<T>::max()) {
    throw json::type_error::create(302, "a number from 0 to " + std::to_string(std::numeric_limits<T>::max()) +
                                            " expected, got " + v.dump(), nullptr);
  }
  return static_cast<T>(v.get<uint64_t>());
}

}  // namespace

Result<NodeCheck> node_check_from_json(const std::string& text, const std::string& what) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("format") || j["format"] != "walcut-check-map-1") {
    return Status::corruption(what + ": not a walcut check map file");
  }
  try {
    NodeCheck c;
    c.node_index = number<uint16_t>(j.at("node_index"));
    c.node_id = j.at("node_id").get<std::string>();
    c.increment = number<uint64_t>(j.at("increment"));
    c.baseline = j.at("baseline").get<std::vector<std::string>>();
    for (const json& g : j.at("groups")) {
      c.groups.push_back(CacheGroup{number<uint32_t>(field(g, 0, 5)), field(g, 1, 5).get<std::string>(),
                                    static_cast<CacheMode>(number<uint8_t>(field(g, 2, 5))),
                                    number<uint16_t>(field(g, 3, 5)), number<uint16_t>(field(g, 4, 5))});
    }
    for (const json& f : j.at("findings")) {
      c.findings.push_back(Finding{field(f, 0, 3).get<std::string>(), field(f, 1, 3).get<std::string>(),
                                   field(f, 2, 3).get<std::string>()});
    }
    auto hashes = [](const json& a, std::map<PartitionId, PartitionHashes>& m) {
      for (const json& h : a) {
        m[PartitionId{number<uint32_t>(field(h, 0, 5)), number<uint16_t>(field(h, 1, 5))}] = PartitionHashes{
            number<uint64_t>(field(h, 2, 5)), number<uint64_t>(field(h, 3, 5)), number<uint64_t>(field(h, 4, 5))};
      }
    };
    hashes(j.at("full"), c.full);
    hashes(j.at("incremental"), c.incremental);
    for (const json& t : j.at("tx")) {
      c.tx_hash[number<uint16_t>(field(t, 0, 3))] = number<uint64_t>(field(t, 1, 3));
      c.tx_count[number<uint16_t>(field(t, 0, 3))] = number<uint64_t>(field(t, 2, 3));
    }
    c.files = number<uint64_t>(j.at("files"));
    c.segments = number<uint64_t>(j.at("segments"));
    c.entries = number<uint64_t>(j.at("entries"));
    c.bytes_read = number<uint64_t>(j.at("bytes_read"));
    if (c.node_index >= c.baseline.size()) return Status::corruption(what + ": node index outside its baseline");
    // The reduce computes affinity over these groups, as restore would.
    if (Status s = validate_groups(c.groups); !s.ok()) return Status::corruption(what + ": " + s.message());
    return c;
  } catch (const json::exception& e) {
    return Status::corruption(what + ": " + e.what());
  }
}

}  // namespace walcut
