#include "tools/node_commands.h"

#include <cstdio>
#include <filesystem>

#include "engine/backup.h"
#include "engine/node.h"
#include "io/file_util.h"
#include "tools/cli_util.h"

namespace walcut::cli {
namespace {

namespace fs = std::filesystem;

bool is_node_dir(const fs::path& p) {
  std::error_code ec;  // unreadable: not a node directory (opening it would name the error)
  return fs::is_regular_file(p / kNodeMetaFile, ec);
}

// A node that is not running: opened read-only, backed up at the end of its WAL.
Status backup_one(const std::string& node_dir, const std::string& file) {
  NodeOptions o;
  o.dir = node_dir;
  o.read_only = true;
  Result<std::unique_ptr<Node>> node = Node::open(o);
  if (!node.ok()) return node.status();
  WALCUT_RETURN_IF_ERROR((*node)->backup(file));
  std::printf("%s -> %s (consistent at the end of its WAL, %s)\n", node_dir.c_str(), file.c_str(),
              (*node)->recovery().wal_end.next.to_string().c_str());
  return {};
}

int run_backup(const std::string& src, const std::string& dest) {
  std::error_code ec;
  if (is_node_dir(src)) {
    if (fs::is_directory(dest, ec)) return fail(Status::invalid_argument(dest + ": a directory; give a file name for one node"));
    Status s = backup_one(src, dest);
    return s.ok() ? kExitOk : fail(s);
  }
  if (!fs::is_directory(src, ec)) return fail(Status::invalid_argument(src + ": not a node or cluster directory"));
  Result<std::vector<DirEntry>> entries = list_directory(src);
  if (!entries.ok()) return fail(entries.status());
  std::vector<fs::path> nodes;
  for (const DirEntry& e : entries.value()) {
    if (is_node_dir(fs::path(src) / e.path)) nodes.push_back(fs::path(src) / e.path);
  }
  if (nodes.empty()) return fail(Status::invalid_argument(src + ": not a node or cluster directory (no node.meta)"));
  // Refused before any file is written, not at the node it falls in.
  for (const fs::path& n : nodes) {
    if (path_is_within(dest, n.string())) {
      return fail(Status::invalid_argument(dest + ": inside the node directory " + n.string() +
                                           " that it would back up; write the backups outside the nodes"));
    }
  }
  Status made = make_directories(dest);
  if (!made.ok()) return fail(made);
  for (const fs::path& n : nodes) {
    Status s = backup_one(n.string(), dest + "/" + n.filename().string() + kBackupExtension);
    if (!s.ok()) return fail(s);
  }
  return kExitOk;
}

int run_recover(const std::string& dir) {
  NodeOptions o;
  o.dir = dir;
  Result<std::unique_ptr<Node>> node = Node::open(o);
  if (!node.ok()) return fail(node.status());
  const RecoveryReport& r = (*node)->recovery();
  if (!r.restored_backup.empty()) std::printf("applied backup %s\n", r.restored_backup.c_str());
  std::printf("node %s: %llu partition files loaded, %llu WAL records replayed after %s\n",
              (*node)->meta().node_id.c_str(), static_cast<unsigned long long>(r.partitions_loaded),
              static_cast<unsigned long long>(r.records_replayed), r.replay_from.to_string().c_str());
  std::printf("  transactions applied %llu, discarded (never committed) %llu, atomic updates %llu\n",
              static_cast<unsigned long long>(r.transactions_applied),
              static_cast<unsigned long long>(r.transactions_discarded),
              static_cast<unsigned long long>(r.atomic_updates_applied));
  if (r.wal_end.torn) {
    std::printf("  torn WAL tail dropped: %llu bytes at offset %llu (%s)\n", static_cast<unsigned long long>(r.wal_end.bytes_dropped),
                static_cast<unsigned long long>(r.wal_end.file_offset), r.wal_end.reason.c_str());
  }
  Status s = (*node)->checkpoint();
  if (s.ok()) s = (*node)->close();
  if (!s.ok()) return fail(s);
  std::printf("  checkpointed and closed\n");
  return kExitOk;
}

}  // namespace

void add_node_commands(CLI::App& app, int& exit_code) {
  auto src = std::make_shared<std::string>(), dest = std::make_shared<std::string>();
  CLI::App* b = app.add_subcommand("backup", "Back up a node that is not running into one file "
                                             "(or every node of a cluster directory into a directory)");
  b->add_option("SRC", *src, "A node directory, or a cluster directory")->required();
  b->add_option("DEST", *dest, "A backup file (for a node), or a directory (for a cluster)")->required();
  add_group_read_flag(*b);
  b->callback([src, dest, &exit_code] { exit_code = run_backup(*src, *dest); });

  CLI::App* node = app.add_subcommand("node", "Node maintenance");
  node->require_subcommand(1);
  auto dir = std::make_shared<std::string>();
  CLI::App* r = node->add_subcommand("recover", "Open a node as the engine does at start-up (a waiting backup first, "
                                                "then its own WAL), checkpoint, close, and say what was done");
  r->add_option("NODE_DIR", *dir, "The node directory")->required();
  add_group_read_flag(*r);
  r->callback([dir, &exit_code] { exit_code = run_recover(*dir); });
}

}  // namespace walcut::cli
