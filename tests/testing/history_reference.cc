#include "tests/testing/history_reference.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include "engine/affinity.h"
#include "engine/node_meta.h"
#include "engine/partition_file.h"

namespace walcut::testing {

namespace fs = std::filesystem;

namespace {

std::string unhex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
  return out;
}

// Whether a committed transaction's line puts it in restore k. Without
// faults its `increment` says so; with them, its decision `cut` against
// the cut of increment k (a complete one), read from the increment lines.
bool in_restore(const nlohmann::json& j, uint64_t k, const std::map<uint64_t, uint64_t>& increment_cut) {
  if (j.contains("increment")) return !j["increment"].is_null() && j["increment"].get<uint64_t>() <= k;
  if (k == kEveryCommitted || j["before_full_snapshot"].get<bool>()) return true;
  auto c = increment_cut.find(k);
  return c != increment_cut.end() && j["cut"].get<uint64_t>() < c->second;
}

}  // namespace

State reference(const std::string& history, uint64_t k) {
  std::vector<nlohmann::json> lines;
  std::map<uint64_t, uint64_t> increment_cut;  // complete increment index -> its cut id
  std::ifstream in(history);
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j["kind"] == "increment" && j.contains("cut") && !j.contains("failed")) {
      increment_cut[j["index"].get<uint64_t>()] = j["cut"].get<uint64_t>();
    }
    if (j["kind"] == "tx" && j["outcome"] == "committed") lines.push_back(std::move(j));
  }
  std::vector<std::pair<uint64_t, const nlohmann::json*>> txs;
  for (const nlohmann::json& j : lines) {
    if (in_restore(j, k, increment_cut)) txs.emplace_back(j["commit_seq"].get<uint64_t>(), &j);
  }
  std::sort(txs.begin(), txs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  State s;
  for (const auto& [seq, j] : txs) {
    for (const auto& w : (*j)["writes"]) {
      std::string key = unhex(w["key"]);
      if (w["value"].is_null()) {
        s[w["group"]].erase(key);
      } else {
        s[w["group"]][key] = unhex(w["value"]);
      }
    }
  }
  return s;
}

std::string compare_restored(const std::string& dest, const State& want) {
  for (const auto& node_dir : fs::directory_iterator(dest)) {
    if (!node_dir.is_directory()) continue;
    Result<NodeMeta> meta = read_node_meta(node_dir.path().string());
    if (!meta.ok()) return meta.status().to_string();
    Affinity aff(meta->groups, meta->baseline);
    for (const CacheGroup& g : meta->groups) {
      for (uint16_t p = 0; p < g.partitions; ++p) {
        if (!aff.owns(g.id, p, meta->node_index)) continue;
        std::string path = node_dir.path().string() + "/db/" + g.name + "/" + partition_file_name(p);
        Result<PartitionFile> f = read_partition_file(path);
        if (!f.ok()) return f.status().to_string();
        if (g.mode == CacheMode::kAtomic) {
          uint16_t primary = aff.primary(g.id, p);
          if (primary == meta->node_index) continue;
          Result<PartitionFile> pf = read_partition_file(dest + "/" + meta->baseline[primary] + "/db/" + g.name + "/" +
                                                         partition_file_name(p));
          if (!pf.ok()) return pf.status().to_string();
          if (pf->entries != f->entries) return path + ": ATOMIC copy differs from its primary's";
          continue;
        }
        std::map<std::string, std::string> have, expect;
        for (const auto& [k, v] : f->entries) have[k] = v.value;
        auto it = want.find(g.name);
        if (it != want.end()) {
          for (const auto& [k, v] : it->second) {
            if (partition_of(g, k) == p) expect[k] = v;
          }
        }
        if (have != expect) {
          return path + ": " + std::to_string(have.size()) + " entries, the reference has " + std::to_string(expect.size());
        }
      }
    }
  }
  return "";
}

}  // namespace walcut::testing
