#include "cut/increment_chain.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "io/names.h"

namespace walcut {

namespace {

// Fills `fault` (when asked for) and returns the status the two name.
Status refuse(ChainFault* fault, std::string where, std::string what, Status status) {
  // A status's message that begins with `where` (a failed increment's
  // refusal, a failed read of its metadata) is not named twice.
  if (what.starts_with(where + ": ")) what.erase(0, where.size() + 2);
  if (fault) *fault = ChainFault{std::move(where), std::move(what)};
  return status;
}

Status corrupt(ChainFault* fault, const std::string& where, const std::string& what) {
  return refuse(fault, where, what, Status::corruption(where + ": " + what));
}

// Increment k's metadata of the node of `base`, checked to be that node's, of its snapshot.
Result<IncrementMeta> node_meta_of(const std::string& snapshot_dir, const SnapshotMeta& base, uint64_t k,
                                   ChainFault* fault, IncrementMetasRead& read) {
  const std::string dir = increment_dir(snapshot_dir, k);
  auto at = read.find(k);
  if (at == read.end()) at = read.emplace(k, read_increment_metas(snapshot_dir, k, base.baseline)).first;
  const Result<std::vector<IncrementMeta>>& metas = at->second;
  if (!metas.ok()) return refuse(fault, dir, metas.status().message(), metas.status());
  const IncrementMeta* m = find_node_meta(metas.value(), base.node_index);
  if (!m) return corrupt(fault, dir, "no metadata for node " + base.node_id);
  const std::string smf = dir + "/" + meta_file_name(base.node_id);
  if (m->node_id != base.node_id || m->cluster_id != base.cluster_id || m->snapshot_name != base.name ||
      m->index != k) {
    return corrupt(fault, smf, "belongs to another node, cluster, snapshot or increment");
  }
  if (m->groups != base.groups) return corrupt(fault, smf, "the cache groups differ from the full snapshot's");
  return *m;
}

// Segment `s` of `m` (increment k): listed in its place, under the
// snapshot (`paths`: its directories are looked at once for all of a
// node's segments), there with the listed size. Returns its path.
Result<std::string> segment_of(const std::string& snapshot_dir, PathsUnder& paths, const IncrementMeta& m, uint64_t k,
                               uint64_t s, ChainFault* fault) {
  const std::string dir = increment_dir(snapshot_dir, k);
  const std::string smf = dir + "/" + meta_file_name(m.node_id);
  const ManifestEntry& f = m.files[s - m.first_segment];
  if (f.path != increment_segment_path(m.node_id, s)) {
    return corrupt(fault, smf, "lists " + f.path + " where segment " + std::to_string(s) + " belongs");
  }
  Result<std::string> path = paths.path(increment_rel_dir(k) + "/" + f.path);  // no link out of it
  if (!path.ok()) return refuse(fault, dir, path.status().message(), path.status());
  struct stat st;
  const int err = ::stat(path->c_str(), &st) != 0 ? errno : 0;
  if (err == ENOENT) return corrupt(fault, *path, "segment " + std::to_string(s) + " of " + m.node_id + " is missing");
  if (err != 0) {
    return refuse(fault, *path, std::string("stat: ") + std::strerror(err), Status::from_errno("stat " + *path, err));
  }
  if (!S_ISREG(st.st_mode)) {
    return corrupt(fault, *path, "segment " + std::to_string(s) + " of " + m.node_id + " is not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) != f.bytes) {
    return corrupt(fault, *path,
                   std::to_string(st.st_size) + " bytes, the manifest says " + std::to_string(f.bytes));
  }
  return path;
}

}  // namespace

Result<NodeIncrements> read_node_increments(const std::string& snapshot_dir, const SnapshotMeta& base, uint64_t n,
                                            ChainFault* fault, IncrementMetasRead* read) {
  IncrementMetasRead own;
  if (read == nullptr) read = &own;
  NodeIncrements out;
  out.base = base;
  out.base.files = std::vector<ManifestEntry>();  // the caller's copy has the manifest
  PathsUnder paths(snapshot_dir, /*list_dirs=*/true);
  uint64_t first = base.snapshot_pointer.segment;
  for (uint64_t k = 1; k <= n; ++k) {
    // A failed increment holds nothing: the next complete one continues from the one before it.
    Result<std::optional<std::string>> failed = increment_failure(snapshot_dir, k);
    if (!failed.ok()) return refuse(fault, increment_dir(snapshot_dir, k), failed.status().message(), failed.status());
    if (failed->has_value() && k == n) {
      Status refused = refuse_failed_increment(snapshot_dir, k, **failed);
      return refuse(fault, increment_dir(snapshot_dir, k), refused.message(), refused);
    }
    if (failed->has_value()) continue;
    Result<IncrementMeta> m = node_meta_of(snapshot_dir, base, k, fault, *read);
    if (!m.ok()) return m.status();
    if (!out.increments.empty() && m->cut_id <= out.increments.back().cut_id) {
      return corrupt(fault, increment_dir(snapshot_dir, k) + "/" + meta_file_name(base.node_id),
                     "of cut " + std::to_string(m->cut_id) + ", not after increment " +
                         std::to_string(out.increments.back().index) + "'s cut " +
                         std::to_string(out.increments.back().cut_id));
    }
    if (m->first_segment != first || m->last_segment < m->first_segment || m->files.empty() ||
        m->files.size() - 1 != m->last_segment - m->first_segment) {  // no +1: a last segment of 2^64-1 wrapped to 0
      return corrupt(fault, increment_dir(snapshot_dir, k) + "/" + meta_file_name(base.node_id),
                     "node " + base.node_id + "'s segments " + std::to_string(m->first_segment) + ".." +
                         std::to_string(m->last_segment) + " do not continue from segment " + std::to_string(first));
    }
    for (uint64_t s = m->first_segment; s <= m->last_segment; ++s) {
      Result<std::string> path = segment_of(snapshot_dir, paths, m.value(), k, s, fault);
      if (!path.ok()) return path.status();
      out.segment_paths.push_back(std::move(path).value());
      out.segment_bytes += m->files[s - m->first_segment].bytes;
    }
    first = m->last_segment + 1;
    out.increments.push_back(std::move(m).value());
  }
  return out;
}

Status check_increment_count(const std::string& snapshot_dir, uint64_t n, ChainFault* fault) {
  Result<uint64_t> count = increment_count(snapshot_dir);
  if (!count.ok()) return refuse(fault, snapshot_dir, count.status().message(), count.status());
  if (n <= count.value()) return {};
  return refuse(fault, snapshot_dir,
                "has " + std::to_string(count.value()) + " increments, " + std::to_string(n) + " asked for",
                Status::invalid_argument("--increment " + std::to_string(n) + ": " + snapshot_dir + " has " +
                                         std::to_string(count.value()) + " increments"));
}

Result<std::vector<NodeIncrements>> read_increment_chain(const std::string& snapshot_dir,
                                                         const std::vector<SnapshotMeta>& bases, uint64_t n) {
  WALCUT_RETURN_IF_ERROR(check_increment_count(snapshot_dir, n));
  std::vector<NodeIncrements> chain;
  IncrementMetasRead read;
  for (const SnapshotMeta& b : bases) {
    Result<NodeIncrements> node = read_node_increments(snapshot_dir, b, n, nullptr, &read);
    if (!node.ok()) return node.status();
    chain.push_back(std::move(node).value());
  }
  return chain;
}

}  // namespace walcut
