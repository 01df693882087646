#include "cut/increment_chain.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace walcut {

Result<NodeIncrements> read_node_increments(const std::string& snapshot_dir, const SnapshotMeta& base, uint64_t n) {
  NodeIncrements out;
  out.base = base;
  uint64_t first = base.snapshot_pointer.segment;
  for (uint64_t k = 1; k <= n; ++k) {
    const std::string dir = increment_dir(snapshot_dir, k);
    // A failed increment holds nothing: the next complete one continues from the one before it.
    Result<std::optional<std::string>> failed = increment_failure(snapshot_dir, k);
    if (!failed.ok()) return failed.status();
    if (failed->has_value() && k == n) return refuse_failed_increment(snapshot_dir, k, **failed);
    if (failed->has_value()) continue;
    Result<std::vector<IncrementMeta>> metas = read_increment_metas(snapshot_dir, k);
    if (!metas.ok()) return metas.status();
    auto m = std::find_if(metas->begin(), metas->end(), [&](const IncrementMeta& x) { return x.node_id == base.node_id; });
    if (m == metas->end()) return Status::corruption(dir + ": no metadata for node " + base.node_id);
    const std::string smf = dir + "/" + base.node_id + ".smf";
    if (m->node_index != base.node_index || m->cluster_id != base.cluster_id || m->snapshot_name != base.name ||
        m->index != k) {
      return Status::corruption(smf + ": belongs to another node, cluster, snapshot or increment");
    }
    if (m->groups != base.groups) return Status::corruption(smf + ": the cache groups differ from the full snapshot's");
    if (m->first_segment != first || m->last_segment < m->first_segment ||
        m->files.size() != m->last_segment - m->first_segment + 1) {
      return Status::corruption(smf + ": node " + base.node_id + "'s segments " + std::to_string(m->first_segment) +
                                ".." + std::to_string(m->last_segment) + " do not continue from segment " +
                                std::to_string(first));
    }
    for (uint64_t s = m->first_segment; s <= m->last_segment; ++s) {
      const ManifestEntry& f = m->files[s - m->first_segment];
      const std::string path = dir + "/" + f.path;
      if (f.path != "wal/" + base.node_id + "/" + segment_file_name(s)) {
        return Status::corruption(smf + ": lists " + f.path + " where segment " + std::to_string(s) + " belongs");
      }
      struct stat st;
      if (::stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) {
          return Status::corruption(path + ": segment " + std::to_string(s) + " of node " + base.node_id + " is missing");
        }
        return Status::from_errno("stat " + path, errno);
      }
      if (S_ISDIR(st.st_mode)) return Status::from_errno("stat " + path, EISDIR);
      if (!S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != f.bytes) {
        return Status::corruption(path + ": " + std::to_string(st.st_size) + " bytes, the manifest says " +
                                  std::to_string(f.bytes));
      }
      out.segment_paths.push_back(path);
      out.segment_bytes += f.bytes;
    }
    first = m->last_segment + 1;
    out.increments.push_back(std::move(*m));
  }
  return out;
}

Result<std::vector<NodeIncrements>> read_increment_chain(const std::string& snapshot_dir,
                                                         const std::vector<SnapshotMeta>& bases, uint64_t n) {
  Result<uint64_t> count = increment_count(snapshot_dir);
  if (!count.ok()) return count.status();
  if (n > count.value()) {
    return Status::invalid_argument("--increment " + std::to_string(n) + ": " + snapshot_dir + " has " +
                                    std::to_string(count.value()) + " increments");
  }
  std::vector<NodeIncrements> chain;
  for (const SnapshotMeta& b : bases) {
    Result<NodeIncrements> node = read_node_increments(snapshot_dir, b, n);
    if (!node.ok()) return node.status();
    chain.push_back(std::move(node).value());
  }
  return chain;
}

}  // namespace walcut
