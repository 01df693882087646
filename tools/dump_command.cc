#include "tools/dump_command.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "engine/node.h"
#include "engine/partition_file.h"
#include "io/file_util.h"
#include "tools/cli_util.h"

namespace walcut::cli {
namespace {

namespace fs = std::filesystem;

// The cache groups a directory holds, by name.
using GroupNames = std::set<std::string>;

// One partition copy to print.
struct Copy {
  std::string node;
  std::string group;
  uint16_t partition = 0;
  std::shared_ptr<const EntryMap> entries;
};

std::string hex(const std::string& s) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char c : s) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

bool is_node_dir(const fs::path& p) {
  std::error_code ec;  // unreadable: not a node directory (opening it would name the error)
  // Whatever stands at node.meta makes one: opening it names what is wrong
  // with it (a FIFO, a directory), rather than the node being left out.
  return fs::exists(fs::symlink_status(p / kNodeMetaFile, ec));
}

// A node directory: its state after recovery, computed in memory (nothing
// on disk changes).
Status collect_node(const fs::path& dir, std::vector<Copy>& out, GroupNames& groups) {
  NodeOptions o;
  o.dir = dir.string();
  o.read_only = true;
  Result<std::unique_ptr<Node>> node = Node::open(o);
  if (!node.ok()) return node.status();
  const NodeMeta& m = (*node)->meta();
  for (const CacheGroup& g : m.groups) groups.insert(g.name);
  for (auto& [pid, entries] : (*node)->share_partitions()) {
    out.push_back(Copy{m.node_id, m.group(pid.first)->name, pid.second, entries});
  }
  return {};
}

// A snapshot's db/ tree: db/<node>/<group>/part-<p>.bin.
Status collect_db_tree(const fs::path& db, std::vector<Copy>& out, GroupNames& groups) {
  Result<std::vector<DirEntry>> entries = list_directory(db.string(), /*recursive=*/true);
  if (!entries.ok()) return entries.status();
  for (const DirEntry& e : entries.value()) {
    const fs::path rel(e.path);  // <node>/<group>/part-<p>.bin
    if (rel.extension() != ".bin" || std::distance(rel.begin(), rel.end()) != 3) continue;
    if (e.kind == DirEntry::Kind::kDirectory) {  // a partition's name on a directory: not silently left out
      return Status::io_error((db / rel).string() + ": a directory where a partition file belongs");
    }
    // Anything else that is not a regular file is read and refused by name.
    Result<PartitionFile> pf = read_partition_file((db / rel).string());
    if (!pf.ok()) return pf.status();
    groups.insert(std::next(rel.begin())->string());
    out.push_back(Copy{rel.begin()->string(), std::next(rel.begin())->string(), pf->info.partition,
                       std::make_shared<const EntryMap>(std::move(pf->entries))});
  }
  return {};
}

Status collect(fs::path dir, const std::string& group, std::vector<Copy>& out) {
  dir = dir.lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();  // "snap/db/" names "snap/db"
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::invalid_argument(dir.string() + ": not a directory");
  GroupNames groups;
  if (is_node_dir(dir)) {
    WALCUT_RETURN_IF_ERROR(collect_node(dir, out, groups));
  } else if (dir.filename() == "db" || fs::is_directory(dir / "db", ec)) {
    WALCUT_RETURN_IF_ERROR(collect_db_tree(dir.filename() == "db" ? dir : dir / "db", out, groups));
  } else {
    Result<std::vector<DirEntry>> entries = list_directory(dir.string());
    if (!entries.ok()) return entries.status();
    bool any = false;
    for (const DirEntry& sub : entries.value()) {
      if (!is_node_dir(dir / sub.path)) continue;  // a symbolic link to a node directory counts
      any = true;
      WALCUT_RETURN_IF_ERROR(collect_node(dir / sub.path, out, groups));
    }
    if (!any) {
      return Status::invalid_argument(dir.string() +
                                      ": not a node directory (no node.meta), a cluster directory or a snapshot db/ tree");
    }
  }
  if (!group.empty() && !groups.count(group)) {  // not an empty dump: the group is not there at all
    std::string names;
    for (const std::string& g : groups) names += (names.empty() ? "" : ", ") + g;
    return Status::invalid_argument("--group " + group + ": no cache group of that name in " + dir.string() +
                                    " (it holds " + (names.empty() ? "none" : names) + ")");
  }
  if (!group.empty()) std::erase_if(out, [&](const Copy& c) { return c.group != group; });
  std::sort(out.begin(), out.end(), [](const Copy& a, const Copy& b) {
    return std::tie(a.node, a.group, a.partition) < std::tie(b.node, b.group, b.partition);
  });
  return {};
}

struct DumpArgs {
  std::string dir;
  std::string group;
  bool json = false;
};

int run(const DumpArgs& a) {
  std::vector<Copy> copies;
  Status s = collect(a.dir, a.group, copies);
  if (!s.ok()) return fail(s);
  for (const Copy& c : copies) {
    for (const auto& [key, v] : *c.entries) {
      if (a.json) {
        nlohmann::json j{{"node", c.node},     {"group", c.group},          {"partition", c.partition},
                         {"key", hex(key)},    {"value", hex(v.value)},     {"version", v.version.to_string()}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%s %s %u %s %s %s\n", c.node.c_str(), c.group.c_str(), c.partition, hex(key).c_str(),
                    hex(v.value).c_str(), v.version.to_string().c_str());
      }
    }
  }
  return kExitOk;
}

}  // namespace

void add_dump_command(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<DumpArgs>();
  CLI::App* d = app.add_subcommand(
      "dump", "Every entry of every partition copy: node, group, partition, key, value, version (sorted)");
  d->add_option("DIR", args->dir, "A node directory, a cluster directory, or a snapshot (or its db/ tree)")->required();
  d->add_option("--group", args->group, "Only this cache group");
  d->add_flag("--json", args->json, "One JSON object per line");
  d->callback([args, &exit_code] { exit_code = run(*args); });
}

}  // namespace walcut::cli
