#include "tools/snapshot_info.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <map>
#include <optional>

#include "cut/increment.h"
#include "cut/increment_chain.h"
#include "replay/check.h"
#include "tools/cli_util.h"

namespace walcut::cli {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxIncrement = 1000000;

struct InfoArgs {
  std::string snapshot;
  std::optional<uint64_t> increment;  // default: the last
  bool json = false;
  bool hash = false;
};

// One node's hashes of one group: its copies' sums, added up.
struct GroupHashes {
  PartitionHashes full;
  std::optional<PartitionHashes> increments;  // TRANSACTIONAL groups, with increments
};

// What info prints, read and checked before anything is printed.
struct Info {
  std::vector<SnapshotMeta> bases;  // by node id
  uint64_t increment_count = 0;     // the snapshot's
  uint64_t shown = 0;               // increments 1..shown
  std::vector<NodeIncrements> chain;   // the complete increments of 1..shown
  std::map<uint64_t, std::string> failed;  // the failed ones: why
  std::map<std::pair<std::string, std::string>, GroupHashes> hashes;  // (node, group)
};

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

uint64_t manifest_bytes(const std::vector<ManifestEntry>& files) {
  uint64_t bytes = 0;
  for (const ManifestEntry& f : files) bytes += f.bytes;
  return bytes;
}

// "812 bytes", "24.6 KB", "4.2 MB": decimal units, as the other reports use.
std::string size_text(uint64_t bytes) {
  char buf[32];
  if (bytes < 10000) return count_of(bytes, "byte");
  if (bytes < 1000000) {
    std::snprintf(buf, sizeof buf, "%.1f KB", static_cast<double>(bytes) / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  }
  return buf;
}

// "segment 3", "segments 3..5".
std::string segments_text(uint64_t first, uint64_t last) {
  if (first == last) return "segment " + std::to_string(first);
  return "segments " + std::to_string(first) + ".." + std::to_string(last);
}

void add(PartitionHashes& sum, const PartitionHashes& h) {  // wrapping sums stay order-independent
  sum.entries += h.entries;
  sum.key_value_hash += h.key_value_hash;
  sum.version_hash += h.version_hash;
}

// Maps every node as snapshot check does and adds its copies' hashes per
// group. A map with findings has no hashes worth printing: a data error.
Status add_hashes(const std::string& snapshot, Info& info) {
  CheckOptions o;
  o.snapshot_dir = snapshot;
  if (info.shown > 0) o.increment = info.shown;
  for (const SnapshotMeta& b : info.bases) {
    Result<NodeCheck> map = map_node(o, b.node_id);
    if (!map.ok()) return map.status();
    if (!map->findings.empty()) {
      const Finding& f = map->findings.front();
      return Status::corruption(b.node_id + ": " + count_of(map->findings.size(), "problem") + " found, first " +
                                f.kind + ": " + f.where + ": " + f.detail + "; run walcut snapshot check");
    }
    for (const CacheGroup& g : b.groups) {
      GroupHashes& h = info.hashes[{b.node_id, g.name}];
      if (info.shown > 0 && g.mode == CacheMode::kTransactional) h.increments.emplace();
    }
    auto group_name = [&](uint32_t id) {
      for (const CacheGroup& g : b.groups) {
        if (g.id == id) return g.name;
      }
      return std::to_string(id);
    };
    for (const auto& [pid, h] : map->full) add(info.hashes[{b.node_id, group_name(pid.first)}].full, h);
    for (const auto& [pid, h] : map->incremental) {
      std::optional<PartitionHashes>& inc = info.hashes[{b.node_id, group_name(pid.first)}].increments;
      if (!inc) inc.emplace();
      add(*inc, h);
    }
  }
  return {};
}

Result<Info> load_info(const InfoArgs& a) {
  WALCUT_RETURN_IF_ERROR(require_directory(a.snapshot));
  Info info;
  Result<std::vector<SnapshotMeta>> bases = read_snapshot_metas(a.snapshot);
  if (!bases.ok()) return bases.status();
  info.bases = std::move(bases).value();
  Result<uint64_t> count = increment_count(a.snapshot);
  if (!count.ok()) return count.status();
  info.increment_count = count.value();
  info.shown = a.increment.value_or(info.increment_count);
  WALCUT_RETURN_IF_ERROR(check_increment_count(a.snapshot, info.shown));
  uint64_t complete = 0;  // the last complete increment of 1..shown
  for (uint64_t k = 1; k <= info.shown; ++k) {
    Result<std::optional<std::string>> failed = increment_failure(a.snapshot, k);
    if (!failed.ok()) return failed.status();
    if (failed->has_value()) {
      info.failed[k] = **failed;
    } else {
      complete = k;
    }
  }
  // A failed increment holds no state to show the hashes of or to stop at: refused as restore refuses it.
  if (info.failed.count(info.shown) && (a.increment || a.hash)) {
    return refuse_failed_increment(a.snapshot, info.shown, info.failed[info.shown]);
  }
  if (complete > 0) {
    Result<std::vector<NodeIncrements>> chain = read_increment_chain(a.snapshot, info.bases, complete);
    if (!chain.ok()) return chain.status();
    info.chain = std::move(chain).value();
  }
  if (a.hash) WALCUT_RETURN_IF_ERROR(add_hashes(a.snapshot, info));
  return info;
}

// Complete increment k of a node's chain (which skips the failed ones).
const IncrementMeta& meta_at(const NodeIncrements& n, uint64_t k) {
  auto m = std::find_if(n.increments.begin(), n.increments.end(), [&](const IncrementMeta& x) { return x.index == k; });
  assert(m != n.increments.end());
  return *m;
}

json hashes_json(const PartitionHashes& h) {
  return {{"entries", h.entries}, {"kv", hex64(h.key_value_hash)}, {"versions", hex64(h.version_hash)}};
}

json info_json(const InfoArgs& a, const Info& info) {
  const SnapshotMeta& first = info.bases.front();
  json groups = json::array(), full = json::array(), increments = json::array();
  for (const CacheGroup& g : first.groups) {
    groups.push_back({{"name", g.name}, {"id", g.id}, {"mode", cache_mode_name(g.mode)},
                      {"partitions", g.partitions}, {"backups", g.backups}});
  }
  for (const SnapshotMeta& b : info.bases) {
    full.push_back({{"node", b.node_id}, {"pointer", b.snapshot_pointer.to_string()},
                    {"partition_files", b.files.size()}, {"bytes", manifest_bytes(b.files)}});
  }
  for (uint64_t k = 1; k <= info.shown; ++k) {
    if (auto f = info.failed.find(k); f != info.failed.end()) {
      increments.push_back({{"increment", k}, {"failed", f->second}});
      continue;
    }
    json nodes = json::array();
    for (const NodeIncrements& n : info.chain) {
      const IncrementMeta& m = meta_at(n, k);
      nodes.push_back({{"node", m.node_id}, {"cut_id", m.cut_id}, {"first_segment", m.first_segment},
                       {"last_segment", m.last_segment}, {"bytes", manifest_bytes(m.files)},
                       {"start", m.start.to_string()}, {"finish", m.finish.to_string()},
                       {"included", m.included_count}, {"excluded", m.excluded_count}});
    }
    increments.push_back({{"increment", k}, {"cut_id", meta_at(info.chain.front(), k).cut_id}, {"nodes", nodes}});
  }
  json j{{"snapshot", a.snapshot},         {"name", first.name},
         {"cluster_id", first.cluster_id}, {"topology_version", first.topology_version},
         {"nodes", first.baseline},        {"groups", groups},
         {"full", full},                   {"increment_count", info.increment_count},
         {"increments", increments}};
  if (a.hash) {
    json hashes = json::array();
    for (const auto& [key, h] : info.hashes) {
      hashes.push_back({{"node", key.first}, {"group", key.second}, {"full", hashes_json(h.full)},
                        {"increments", h.increments ? hashes_json(*h.increments) : json(nullptr)}});
    }
    j["hashes"] = {{"increment", info.shown}, {"groups", hashes}};
  }
  return j;
}

std::string hashes_text(const PartitionHashes& h) {
  return count_of(h.entries, "entry", "entries") + ", kv " + hex64(h.key_value_hash) + ", versions " +
         hex64(h.version_hash);
}

void print_hashes(const Info& info) {
  std::printf("hashes at increment %llu (sums over each node's copies, as snapshot check computes them)\n",
              static_cast<unsigned long long>(info.shown));
  for (const auto& [key, h] : info.hashes) {
    std::printf("  %-12s %-12s full: %s\n", key.first.c_str(), key.second.c_str(), hashes_text(h.full).c_str());
    if (h.increments) std::printf("  %-25s increments: %s\n", "", hashes_text(*h.increments).c_str());
  }
}

void print_info(const InfoArgs& a, const Info& info) {
  const SnapshotMeta& first = info.bases.front();
  std::printf("snapshot %s: name %s, cluster %llu, topology version %u\n", a.snapshot.c_str(), first.name.c_str(),
              static_cast<unsigned long long>(first.cluster_id), first.topology_version);
  std::string nodes;
  for (const std::string& n : first.baseline) nodes += (nodes.empty() ? "" : ", ") + n;
  std::printf("%s: %s\n", count_of(first.baseline.size(), "node").c_str(), nodes.c_str());
  std::printf("%s:\n", count_of(first.groups.size(), "group").c_str());
  for (const CacheGroup& g : first.groups) {
    std::printf("  %-12s id %u, %s, %s, %s\n", g.name.c_str(), g.id, cache_mode_name(g.mode),
                count_of(g.partitions, "partition").c_str(), count_of(g.backups, "backup").c_str());
  }
  std::printf("full snapshot:\n");
  for (const SnapshotMeta& b : info.bases) {
    std::printf("  %-12s CLUSTER_SNAPSHOT at %s, %s, %s\n", b.node_id.c_str(), b.snapshot_pointer.to_string().c_str(),
                count_of(b.files.size(), "partition file").c_str(), size_text(manifest_bytes(b.files)).c_str());
  }
  std::printf("%s%s\n", count_of(info.increment_count, "increment").c_str(),
              info.shown < info.increment_count ? (", 1.." + std::to_string(info.shown) + " shown").c_str() : "");
  for (uint64_t k = 1; k <= info.shown; ++k) {
    if (auto f = info.failed.find(k); f != info.failed.end()) {
      std::printf("  increment %llu: failed (%s)\n", static_cast<unsigned long long>(k), f->second.c_str());
      continue;
    }
    std::printf("  increment %llu: cut %llu\n", static_cast<unsigned long long>(k),
                static_cast<unsigned long long>(meta_at(info.chain.front(), k).cut_id));
    for (const NodeIncrements& n : info.chain) {
      const IncrementMeta& m = meta_at(n, k);
      std::printf("    %-12s %s, %s, START %s, FINISH %s, included %llu, excluded %llu\n", m.node_id.c_str(),
                  segments_text(m.first_segment, m.last_segment).c_str(), size_text(manifest_bytes(m.files)).c_str(),
                  m.start.to_string().c_str(), m.finish.to_string().c_str(),
                  static_cast<unsigned long long>(m.included_count), static_cast<unsigned long long>(m.excluded_count));
    }
  }
  if (!info.hashes.empty()) print_hashes(info);
}

int run_info(const InfoArgs& a) {
  Result<Info> info = load_info(a);
  if (!info.ok()) return fail(info.status());
  if (a.json) {
    std::printf("%s\n", info_json(a, info.value()).dump(2).c_str());
  } else {
    print_info(a, info.value());
  }
  return kExitOk;
}

}  // namespace

void add_snapshot_info_command(CLI::App& snapshot, int& exit_code) {
  auto a = std::make_shared<InfoArgs>();
  CLI::App* i = snapshot.add_subcommand("info", "What a snapshot holds: nodes, groups, the full snapshot's pointers, "
                                                "each increment's cut, segments and sets, from the metadata");
  i->add_option("SNAPSHOT_DIR", a->snapshot, "The snapshot: <snapshots>/<name>")->required();
  i->add_option("--increment", a->increment, "Show increments 1..N (default: all), and hash the state at N")
      ->check(whole_number(0, kMaxIncrement));
  i->add_flag("--json", a->json, "JSON report");
  i->add_flag("--hash", a->hash,
              "Also read every file (as snapshot check does) and print per node and group the order-independent "
              "hashes of the full snapshot's copies and of the changes increments 1..N apply");
  i->callback([a, &exit_code] { exit_code = run_info(*a); });
}

}  // namespace walcut::cli
