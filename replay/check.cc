#include "replay/check.h"

#include <xxhash.h>

#include <nlohmann/json.hpp>
#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/parallel_for.h>
#include <boost/unordered/unordered_flat_set.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <limits>
#include <mutex>
#include <set>
#include <string_view>
#include <tuple>

#include "cut/increment_chain.h"
#include "cut/replay_filter.h"
#include "engine/affinity.h"
#include "engine/snapshot.h"
#include "io/crc32c.h"
#include "io/file_util.h"
#include "io/names.h"
#include "replay/parallel.h"
#include "replay/pipeline.h"

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
// Partition hashes belong to the apply group that owns the partition; the rest
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
    if (tx.again) return {};  // a copy after a checkpoint, counted where it was first logged
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

// The progress of a check: the partition files read of every node mapped,
// plus each node's increments: its listed segments, whole, of which its
// replay reads all but the tails, read after it.
class CheckProgress {
 public:
  CheckProgress(const CheckOptions& o, const std::vector<SnapshotMeta>& nodes) : fn_(o.progress) {
    if (!fn_) return;
    IncrementMetasRead read;
    for (const SnapshotMeta& m : nodes) {
      for (const ManifestEntry& f : m.files) total_ += f.bytes;
      if (!o.increment) continue;
      Result<NodeIncrements> inc =
          read_node_increments(o.snapshot_dir, m, *o.increment, nullptr, &read);  // faults are findings later
      replays_[m.node_id] = Replay{0, inc.ok() ? inc->segment_bytes : 0};
    }
  }
  void read(const std::string& node, uint64_t bytes) {
    if (!fn_) return;
    std::lock_guard<std::mutex> lock(mu_);
    done_ += bytes;
    report(node);
  }
  // Node `node`'s replay progress, as its own ProgressHub reports it
  // (whose final report names no node).
  std::function<void(const ReplayProgress&)> replay_callback(const std::string& node) {
    if (!fn_) return {};
    return [this, node](const ReplayProgress& p) {
      std::lock_guard<std::mutex> lock(mu_);
      Replay& r = replays_[node];
      r.total = std::max(r.total, p.bytes_total);
      r.done = std::min(p.bytes_done, r.total);
      report(node);
    };
  }
  // Node `node`'s segments are read: `bytes` of them, all of them (their
  // listed sizes) on a clean snapshot, less where a fault stopped the read.
  void increments_read(const std::string& node, uint64_t bytes) {
    if (!fn_) return;
    std::lock_guard<std::mutex> lock(mu_);
    Replay& r = replays_[node];
    r.done = std::min(bytes, r.total);
    report(node);
  }
  void report(const std::string& node) {
    ReplayProgress p{"check", node, done_, total_, 0};
    for (const auto& [id, r] : replays_) {
      p.bytes_done += r.done;
      p.bytes_total += r.total;
    }
    fn_(p);
  }

 private:
  struct Replay {
    uint64_t done = 0, total = 0;
  };
  const std::function<void(const ReplayProgress&)>& fn_;
  std::mutex mu_;
  uint64_t done_ = 0, total_ = 0;
  std::map<std::string, Replay> replays_;
};

void structure(NodeCheck& c, std::string where, std::string detail) {
  c.findings.push_back(Finding{"structure", std::move(where), std::move(detail), "", std::nullopt});
}

// The byte offset `text` names ("... at offset <n>..."), if it names one.
std::optional<uint64_t> offset_named(std::string_view text) {
  constexpr std::string_view kAt = " at offset ";
  const size_t at = text.find(kAt);
  if (at == std::string_view::npos) return std::nullopt;
  uint64_t offset = 0;
  const char* digits = text.data() + at + kAt.size();
  auto [end, ec] = std::from_chars(digits, text.data() + text.size(), offset);
  if (ec != std::errc() || end == digits) return std::nullopt;
  return offset;
}

// A finding about `file` (where it is), at the offset its detail names.
void structure_in(NodeCheck& c, const std::string& file, std::string detail) {
  std::optional<uint64_t> offset = offset_named(detail);
  c.findings.push_back(Finding{"structure", file, std::move(detail), file, offset});
}

// A finding whose detail is a reader's message: such a message about a file
// under `dir` starts with its path ("<file> at offset <n>: ..." or
// "<file>: ..."), which becomes the finding's file, with the offset named
// there; otherwise the file is `where_file` (empty: none), with no offset.
void structure_from_reader(NodeCheck& c, const std::string& dir, std::string where, std::string where_file,
                           std::string message) {
  Finding f{"structure", std::move(where), std::move(message), std::move(where_file), std::nullopt};
  if (f.detail.starts_with(dir + "/")) {
    const size_t end = std::min(f.detail.find(" at offset "), f.detail.find(": "));
    if (end != std::string::npos) {
      f.file = f.detail.substr(0, end);
      f.offset = offset_named(std::string_view(f.detail).substr(end));
    }
  }
  c.findings.push_back(std::move(f));
}

// `message` without the path a reader names, for a finding that names
// the file itself: "<path>: what" is "what", and "read <path> at offset
// n: what" is "read at offset n: what".
std::string without_path(const std::string& message, const std::string& path) {
  if (message.starts_with(path + ": ")) return message.substr(path.size() + 2);
  const size_t at = message.find(" " + path);
  const size_t after = at + 1 + path.size();
  if (at == std::string::npos || after >= message.size() || (message[after] != ':' && message[after] != ' ')) {
    return message;
  }
  return message.substr(0, at) + message.substr(after);
}

// Whether `s` is walcut's own failure to read a file (NodeCheck::unreadable):
// no permission, or out of descriptors or memory. Keeps the first in `c`.
bool unreadable(NodeCheck& c, const Status& s) {
  switch (s.error_number()) {
    case EACCES:
    case EPERM:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
      if (c.unreadable.ok()) c.unreadable = s;
      return true;
  }
  return false;
}

// Files (anything but a directory) under `dir`, recursively, relative to
// `base`; a listing that fails is a finding, unless unreadable().
std::set<std::string> files_under(NodeCheck& c, const std::string& base, const std::string& dir) {
  std::set<std::string> out;
  std::error_code ec;
  if (!fs::exists(base + "/" + dir, ec)) return out;
  Result<std::vector<DirEntry>> entries = list_directory(base + "/" + dir, /*recursive=*/true);
  if (!entries.ok()) {
    if (!unreadable(c, entries.status())) structure_in(c, base + "/" + dir, entries.status().message());
    return out;
  }
  for (const DirEntry& e : entries.value()) {
    if (e.kind != DirEntry::Kind::kDirectory) out.insert(dir + "/" + e.path);
  }
  return out;
}

void check_full_snapshot(const CheckOptions& o, const SnapshotMeta& me, NodeCheck& c, CheckProgress& progress) {
  // Every listed file: there, its size, its checksum, the partition it claims.
  std::vector<const ManifestEntry*> files;
  for (const ManifestEntry& f : me.files) files.push_back(&f);
  std::vector<std::optional<PartitionFileScan>> parsed(files.size());
  std::vector<std::string> problems(files.size());
  std::vector<Status> read_failed(files.size());  // unreadable() ones are no finding
  tbb::parallel_for(size_t{0}, files.size(), [&](size_t i) {
    struct Counted {  // however the file turns out
      CheckProgress& progress;
      const std::string& node;
      uint64_t bytes;
      ~Counted() { progress.read(node, bytes); }
    } counted{progress, me.node_id, files[i]->bytes};
    Result<std::string> under = path_under(o.snapshot_dir, files[i]->path);
    if (!under.ok()) {
      problems[i] = under.status().message();
      return;
    }
    const std::string& path = under.value();
    std::error_code ec;
    if (!fs::exists(path, ec)) {
      problems[i] = "listed in the manifest but missing";
      return;
    }
    Result<Bytes> bytes = read_listed_size(path, *files[i]);
    if (!bytes.ok()) {
      problems[i] = without_path(bytes.status().message(), path);
      read_failed[i] = bytes.status();
      return;
    }
    // Each block's CRC, the key order and the footer's hashes, recomputed;
    // after a checksum that differs, it names where the damage is.
    const bool crc_differs = crc32c(bytes.value()) != files[i]->crc32c;
    Result<PartitionFileScan> scan = scan_partition_file(path, bytes.value(), nullptr);
    if (crc_differs || !scan.ok()) {
      problems[i] = crc_differs ? "checksum differs from the manifest" : "";
      if (!scan.ok()) problems[i] += (crc_differs ? "; " : "") + without_path(scan.status().message(), path);
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
      if (!unreadable(c, read_failed[i])) structure_in(c, o.snapshot_dir + "/" + files[i]->path, problems[i]);
      continue;
    }
    const PartitionFileInfo& info = parsed[i]->info;
    const CacheGroup* g = group_by_id(me.groups, info.group_id);
    std::string expect = g ? snapshot_partition_path(me.node_id, g->name, info.partition) : "";
    if (!g || info.node_index != me.node_index || files[i]->path != expect) {
      structure_in(c, o.snapshot_dir + "/" + files[i]->path,
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
  for (const std::string& f : files_under(c, o.snapshot_dir, snapshot_db_dir(me.node_id))) {
    if (!listed.count(f)) structure_in(c, o.snapshot_dir + "/" + f, "file is not in " + me.node_id + ".smf's manifest");
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

// CRC32C `crc` carried on over the bytes of `path` from offset `from` to
// its end. The file is opened again after the replay: one put in its place
// since must still be a regular file (read_file_pieces() refuses a FIFO,
// which would block the open and the reads, and a link) of the manifest's
// size `bytes` (one swapped for a larger one, a sparse terabyte, is not
// read). Adds the bytes it reads to `read`.
Result<uint32_t> crc_of_rest(const std::string& path, uint64_t from, uint64_t bytes, uint32_t crc, uint64_t& read) {
  auto sized = [&](uint64_t n) {
    if (n == bytes) return Status{};
    return Status::corruption(std::to_string(n) + " bytes, the manifest says " + std::to_string(bytes) +
                              " (it changed while it was checked)");
  };
  auto add = [&](ByteSpan piece) {
    crc = crc32c(piece, crc);
    read += piece.size();
    return Status{};
  };
  WALCUT_RETURN_IF_ERROR(read_file_pieces(path, from, add, /*follow=*/false, sized));
  return crc;
}

// The blocks each increment's metadata records for its cut records
// (start_block, finish_block: version 2), read as a --node restore of
// that increment reads them for a node it does not replay: the replay
// read every block, so a wrong offset here is the metadata's, which
// such a restore would refuse.
void check_recorded_blocks(const CheckOptions& o, const NodeIncrements& chain, NodeCheck& c) {
  for (size_t k = 0; k < chain.increments.size(); ++k) {
    const IncrementMeta& m = chain.increments[k];
    if (m.start_block == 0 && m.finish_block == 0) continue;  // version 1: none recorded
    // Increment k alone: its own START and FINISH (k - 1's FINISH is
    // k - 1's to answer for).
    const auto first =
        chain.segment_paths.begin() + static_cast<ptrdiff_t>(m.first_segment - chain.increments.front().first_segment);
    const NodeIncrements alone{chain.base, {m}, {first, first + static_cast<ptrdiff_t>(m.files.size())}, 0};
    Result<ReplayFilter> f = load_replay_filter(alone, o.io, FilterRead::kCutRecordBlocks);
    if (!f.ok() && !unreadable(c, f.status())) {
      structure_in(c, increment_dir(o.snapshot_dir, m.index) + "/" + meta_file_name(m.node_id),
                   "the blocks of its cut records: " + f.status().message());
    }
  }
}

// Increments 1..N: metadata, segments present and continuous, nothing
// unlisted; then the data, read through the restore pipeline, and each
// segment's CRC32C against its manifest: over the bytes the pipeline
// read, as it read them, and the rest of the file after them.
void check_increments(const CheckOptions& o, const SnapshotMeta& me, uint64_t n, NodeCheck& c,
                      CheckProgress& progress) {
  ChainFault fault;
  auto chain_fault = [&] { structure_from_reader(c, o.snapshot_dir, fault.where, fault.where, fault.what); };
  if (!check_increment_count(o.snapshot_dir, n, &fault).ok()) return chain_fault();
  Result<NodeIncrements> chain = read_node_increments(o.snapshot_dir, me, n, &fault);
  if (!chain.ok()) return chain_fault();
  c.segments += chain->segment_paths.size();
  for (const IncrementMeta& m : chain->increments) {
    const std::string dir = increment_dir(o.snapshot_dir, m.index);
    std::set<std::string> listed;
    for (const ManifestEntry& f : m.files) listed.insert(f.path);
    for (const std::string& f : files_under(c, dir, increment_wal_dir(me.node_id))) {
      if (!listed.count(f)) {
        structure_in(c, dir + "/" + f, "file is not in " + meta_file_name(me.node_id) + "'s manifest");
      }
    }
  }
  CheckSink sink(c);
  ReplayOptions ro;
  ro.threads = o.threads;
  ro.io = o.io;
  ro.progress = progress.replay_callback(me.node_id);
  struct Sum {
    uint64_t bytes = 0;  // from offset 0
    uint32_t crc = 0;
  };
  std::vector<Sum> sums(chain->segment_paths.size());  // the pipeline reads chain's segments, in its order
  ro.io.on_chunk = [&sums](const Chunk& ch) {
    if (ch.file >= sums.size() || ch.offset != sums[ch.file].bytes) return;  // cannot be: chunks come in order
    Sum& sum = sums[ch.file];
    sum.crc = crc32c(ch.bytes, sum.crc);
    sum.bytes += ch.bytes.size();
  };
  ReplayReport report;
  Status s = replay_node(o.snapshot_dir, n, me.node_index, sink, ro, report);
  std::string failed_file;  // the segment the pipeline's finding names: its checksum is not compared too
  if (s.ok()) {
    for (const Version& x : sink.finish()) {
      c.findings.push_back(Finding{"partially-committed", me.node_id,
                                   "transaction " + x.to_string() + " has data but no PREPARED record", "",
                                   std::nullopt});
    }
    c.increments_read = true;
  } else {
    if (unreadable(c, s)) return;
    // Half-read hashes: the reduce leaves this node out of the comparisons they serve (increments_read).
    c.incremental.clear();
    c.tx_hash.clear();
    c.tx_count.clear();
    structure_from_reader(c, o.snapshot_dir, me.node_id + " increments 1.." + std::to_string(n), "", s.message());
    if (s.code() == StatusCode::kCancelled) return;
    failed_file = c.findings.back().file;
  }
  // Bytes the pipeline does not read (a segment's tail after SEGMENT_END,
  // the last one's after FINISH, every segment after one it failed on)
  // and a segment rewritten with valid blocks are found here: each
  // segment's CRC32C goes on from the bytes the pipeline read of it.
  size_t i = 0;
  bool blocks_sound = s.ok() || !failed_file.empty();  // read by the pipeline without a fault: before the one it named
  for (const IncrementMeta& m : chain->increments) {
    for (const ManifestEntry& f : m.files) {
      const std::string path = increment_dir(o.snapshot_dir, m.index) + "/" + f.path;
      c.bytes_read += sums.at(i).bytes;  // the chunks the replay read, then the tail after them
      const std::string& read_at = chain->segment_paths.at(i);
      if (read_at == failed_file || path == failed_file) {
        blocks_sound = false;
      } else {
        Result<uint32_t> crc = crc_of_rest(read_at, sums.at(i).bytes, f.bytes, sums.at(i).crc, c.bytes_read);
        if (!crc.ok() && unreadable(c, crc.status())) return;
        if (!crc.ok()) {
          structure_in(c, path, without_path(crc.status().message(), read_at));
        } else if (crc.value() != f.crc32c) {
          structure_in(c, path,
                       blocks_sound ? "checksum differs from the manifest, though its blocks read as sound"
                                    : "checksum differs from the manifest");
        }
      }
      ++i;
    }
  }
  if (s.ok()) check_recorded_blocks(o, chain.value(), c);
}

// The .smf files of increments 1..N must be one per node of the baseline,
// as the full snapshot's: a missing or extra one means the snapshot cannot
// be checked (the rest of an increment's structure is a finding).
Status match_increment_meta_files(const CheckOptions& o, const std::vector<std::string>& baseline) {
  Result<uint64_t> count = increment_count(o.snapshot_dir);
  if (!count.ok()) return {};  // a finding of check_increments
  for (uint64_t k = 1; k <= std::min(o.increment.value_or(0), count.value()); ++k) {
    Result<std::optional<std::string>> failed = increment_failure(o.snapshot_dir, k);
    if (!failed.ok() || failed->has_value()) continue;  // a finding of check_increments, or no .smf files to match
    Result<std::vector<std::string>> names = list_meta_files(increment_dir(o.snapshot_dir, k));
    if (!names.ok()) continue;  // as above
    WALCUT_RETURN_IF_ERROR(match_baseline(increment_dir(o.snapshot_dir, k), baseline, names.value()));
  }
  return {};
}

}  // namespace

namespace {

Result<NodeCheck> map_node_with(const CheckOptions& o, const std::string& node_id, CheckProgress* shared) {
  Result<std::vector<SnapshotMeta>> metas = read_snapshot_metas(o.snapshot_dir);
  if (!metas.ok()) return metas.status();
  auto me = std::find_if(metas->begin(), metas->end(), [&](const SnapshotMeta& m) { return m.node_id == node_id; });
  if (me == metas->end()) return Status::invalid_argument("--node " + node_id + ": no such node in " + o.snapshot_dir);
  std::optional<CheckProgress> own;  // of this node alone
  if (!shared) own.emplace(o, std::vector<SnapshotMeta>{*me});
  CheckProgress& progress = shared ? *shared : *own;
  WALCUT_RETURN_IF_ERROR(match_increment_meta_files(o, me->baseline));
  NodeCheck c;
  c.node_index = me->node_index;
  c.node_id = me->node_id;
  c.baseline = me->baseline;
  c.groups = me->groups;
  c.increment = o.increment.value_or(0);
  if (c.increment > 0) {
    Result<uint64_t> count = increment_count(o.snapshot_dir);
    if (count.ok() && c.increment > count.value()) {  // as restore says it; a gap is a finding below
      return Status::invalid_argument("--increment " + std::to_string(c.increment) + ": " + o.snapshot_dir + " has " +
                                      std::to_string(count.value()) + " increments");
    }
  }
  for (const SnapshotMeta& other : metas.value()) {
    if (other.cluster_id != me->cluster_id || other.baseline != me->baseline || other.groups != me->groups ||
        other.name != me->name) {
      structure_in(c, o.snapshot_dir + "/" + meta_file_name(other.node_id),
                   "disagrees with " + meta_file_name(node_id) + " on cluster, baseline, groups or name");
    }
  }
  if (me->baseline.at(me->node_index) != me->node_id) {
    structure_in(c, o.snapshot_dir + "/" + meta_file_name(node_id), "node index does not match the baseline");
  }
  check_full_snapshot(o, *me, c, progress);
  if (c.increment > 0 && c.unreadable.ok()) {
    const uint64_t before = c.bytes_read;
    check_increments(o, *me, c.increment, c, progress);
    progress.increments_read(me->node_id, c.bytes_read - before);
  }
  if (!c.unreadable.ok()) return c.unreadable.with_context("cannot check");
  return c;
}

}  // namespace

Result<NodeCheck> map_node(const CheckOptions& o, const std::string& node_id) {
  return map_node_with(o, node_id, nullptr);
}

namespace {

std::string joined(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const std::string& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

// The copies of every group's partitions, primary against each backup,
// by the hashes of `field`; a map with no hashes there for a copy it holds
// is left out, and said to be.
class CopyComparison {
 public:
  CopyComparison(const std::map<uint16_t, const NodeCheck*>& by_index, const NodeCheck& first, CheckReport& r)
      : by_index_(by_index), aff_(first.groups, first.baseline), r_(r) {}

  // `skip`: nodes left out of this comparison altogether (said elsewhere);
  // `unread_why`: what a copy without hashes was not, after "<node>'s copy".
  void run(const char* kind, const CacheGroup& g, uint16_t p, std::map<PartitionId, PartitionHashes> NodeCheck::*field,
           const std::set<uint16_t>& skip, const std::string& unread_why) {
    const PartitionId pid{g.id, p};
    std::vector<const NodeCheck*> copies;  // owners with a map, primary first when it has one
    std::vector<std::string> unread;
    for (uint16_t owner : aff_.owners(g.id, p)) {
      auto m = by_index_.find(owner);
      if (m == by_index_.end() || skip.count(owner)) {
        copies.push_back(nullptr);
        continue;
      }
      const bool has = (m->second->*field).count(pid) > 0;
      copies.push_back(has ? m->second : nullptr);
      if (!has) unread.push_back(m->second->node_id);
    }
    if (copies.size() < 2) return;  // no backup: nothing to compare
    if (!unread.empty()) {
      r_.not_compared.push_back(NotCompared{g.name + " partition " + std::to_string(p), {kind},
                                            joined(unread, " and ") + (unread.size() == 1 ? "'s copy " : "'s copies ") +
                                                unread_why});
    }
    const NodeCheck* primary = copies.front();
    if (!primary) return;
    const PartitionHashes& ph = (primary->*field).at(pid);
    for (size_t i = 1; i < copies.size(); ++i) {
      if (!copies[i]) continue;
      const PartitionHashes& bh = (copies[i]->*field).at(pid);
      if (bh == ph) continue;
      r_.findings.push_back(Finding{kind, g.name + " partition " + std::to_string(p),
                                    "primary " + primary->node_id + " has " + described(ph) + "; backup " +
                                        copies[i]->node_id + " has " + described(bh),
                                    "", std::nullopt});
    }
  }

 private:
  static std::string described(const PartitionHashes& h) {
    return std::to_string(h.entries) + " entries, kv " + hex64(h.key_value_hash) + ", versions " +
           hex64(h.version_hash);
  }
  const std::map<uint16_t, const NodeCheck*>& by_index_;
  Affinity aff_;
  CheckReport& r_;
};

// Each pair of nodes that both read their increments: A's sum for B against B's for A.
void compare_transactions(const std::vector<NodeCheck>& maps, const std::set<uint16_t>& skip, CheckReport& r) {
  auto get = [](const std::map<uint16_t, uint64_t>& m, uint16_t k) {
    auto it = m.find(k);
    return it == m.end() ? uint64_t{0} : it->second;
  };
  for (const NodeCheck& a : maps) {
    if (a.increment == 0 || skip.count(a.node_index)) continue;
    for (const NodeCheck& b : maps) {
      if (b.node_index <= a.node_index || b.increment == 0 || skip.count(b.node_index)) continue;
      uint64_t ab = get(a.tx_hash, b.node_index), ba = get(b.tx_hash, a.node_index);
      if (ab == ba) continue;
      r.findings.push_back(Finding{"transactions", a.node_id + " <-> " + b.node_id,
                                   a.node_id + " committed " + std::to_string(get(a.tx_count, b.node_index)) +
                                       " transactions as a primary with " + b.node_id + " (hash " + hex64(ab) +
                                       "), " + b.node_id + " " + std::to_string(get(b.tx_count, a.node_index)) +
                                       " with " + a.node_id + " (hash " + hex64(ba) + ")",
                                   "", std::nullopt});
    }
  }
}

}  // namespace

CheckReport reduce_checks(std::vector<NodeCheck> maps) {
  CheckReport r;
  // A file every map reads (an increment's .smf of another node, say) is
  // found broken by each of them: the same finding is reported once.
  std::set<std::tuple<std::string, std::string, std::string, std::string, std::optional<uint64_t>>> seen;
  for (const NodeCheck& m : maps) {
    for (const Finding& f : m.findings) {
      if (seen.emplace(f.kind, f.where, f.detail, f.file, f.offset).second) r.findings.push_back(f);
    }
    r.bytes_read += m.bytes_read;
  }
  if (maps.empty()) return r;
  std::map<uint16_t, const NodeCheck*> by_index;
  for (const NodeCheck& m : maps) by_index[m.node_index] = &m;
  const NodeCheck& first = maps.front();
  for (size_t i = 0; i < first.baseline.size(); ++i) {
    if (by_index.count(static_cast<uint16_t>(i))) continue;
    r.findings.push_back(Finding{"structure", first.baseline[i],
                                 "a node of the baseline with no metadata or map: its copies were not checked", "",
                                 std::nullopt});
    std::vector<std::string> kinds{"partition"};
    if (first.increment > 0) kinds.insert(kinds.end(), {"increment-partition", "transactions"});
    r.not_compared.push_back(NotCompared{first.baseline[i], kinds, "no map of it"});
  }
  // A node whose increments were not read to the end has half the hashes:
  // comparing them would only add follow-on findings to its structure finding.
  std::set<uint16_t> half_read;
  for (const NodeCheck& m : maps) {
    if (m.increment == 0 || m.increments_read) continue;
    half_read.insert(m.node_index);
    r.not_compared.push_back(NotCompared{m.node_id, {"increment-partition", "transactions"},
                                         "its increments 1.." + std::to_string(m.increment) +
                                             " were not read to the end"});
  }
  CopyComparison copies(by_index, first, r);
  for (const CacheGroup& g : first.groups) {
    for (uint16_t p = 0; p < g.partitions; ++p) {
      copies.run("partition", g, p, &NodeCheck::full, {}, "in the full snapshot could not be read");
      if (g.mode == CacheMode::kTransactional && first.increment > 0) {
        copies.run("increment-partition", g, p, &NodeCheck::incremental, half_read,
                   "has no increment hashes in its map");
      }
    }
  }
  compare_transactions(maps, half_read, r);
  r.nodes = std::move(maps);
  return r;
}

Result<CheckReport> check_snapshot(const CheckOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  return with_threads(o.threads, [&]() -> Result<CheckReport> {
    Result<std::vector<SnapshotMeta>> metas = read_snapshot_metas(o.snapshot_dir);
    if (!metas.ok()) return metas.status();
    // Nodes are mapped side by side, at most one per thread at a time.
    const std::vector<SnapshotMeta>& all = metas.value();
    CheckProgress progress(o, all);
    std::vector<std::optional<Result<NodeCheck>>> results(all.size());
    for_each_in_waves(all.size(), thread_count(o.threads),
                      [&](size_t i) { results[i] = map_node_with(o, all[i].node_id, &progress); });
    std::vector<NodeCheck> maps;
    for (auto& c : results) {
      if (!c->ok()) return c->status();
      maps.push_back(std::move(*c).value());
    }
    CheckReport r = reduce_checks(std::move(maps));
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
  });
}

// ---- Map files

namespace {

using json = nlohmann::json;

constexpr const char* kMapFormat = "walcut-check-map-3";         // findings with file and offset, increments_read
constexpr const char* kHexMapFormat = "walcut-check-map-2";      // hashes as 16 hex digits, findings of 3
constexpr const char* kDecimalMapFormat = "walcut-check-map-1";  // hashes as JSON numbers, findings of 3

// Reads the fields of a map file with every type, shape and range checked
// (no exceptions): the first problem is kept, and later reads return zeros
// and empty values so the caller can run to its end and ask status().
class MapReader {
 public:
  MapReader(std::string what, bool decimal_hashes) : what_(std::move(what)), decimal_hashes_(decimal_hashes) {}

  const json& member(const json& object, const char* key) {
    auto it = object.find(key);
    if (it != object.end()) return *it;
    fail(key, "missing");
    return null_;
  }
  // The elements of an array, each an array of `width` (0: any shape).
  const json::array_t& array(const json& v, const char* field, size_t width = 0) {
    static const json::array_t kEmpty;
    bool shaped = v.is_array() && std::all_of(v.begin(), v.end(), [&](const json& e) {
                    return width == 0 || (e.is_array() && e.size() == width);
                  });
    if (shaped) return v.get_ref<const json::array_t&>();
    fail(field, width == 0 ? "not an array" : "not an array of arrays of " + std::to_string(width));
    return kEmpty;
  }
  template <typename T>
  T uint(const json& v, const char* field) {
    constexpr uint64_t kMax = std::numeric_limits<T>::max();
    if (!v.is_number_unsigned() || v.get<uint64_t>() > kMax) {
      fail(field, "not an integer from 0 to " + std::to_string(kMax) + ": " + shown(v));
      return 0;
    }
    return static_cast<T>(v.get<uint64_t>());
  }
  uint64_t hash(const json& v, const char* field) {
    if (decimal_hashes_) return uint<uint64_t>(v, field);
    const std::string* s = v.is_string() ? &v.get_ref<const std::string&>() : nullptr;
    uint64_t h = 0;
    if (s && s->size() == 16) {
      auto [end, ec] = std::from_chars(s->data(), s->data() + s->size(), h, 16);
      if (ec == std::errc() && end == s->data() + s->size()) return h;
    }
    fail(field, "not a hash of 16 hex digits: " + shown(v));
    return 0;
  }
  std::string string(const json& v, const char* field) {
    if (v.is_string()) return v.get<std::string>();
    fail(field, "not a string: " + shown(v));
    return "";
  }
  // null: "" and nullopt.
  std::string string_or_null(const json& v, const char* field) { return v.is_null() ? "" : string(v, field); }
  std::optional<uint64_t> uint_or_null(const json& v, const char* field) {
    if (v.is_null()) return std::nullopt;
    return uint<uint64_t>(v, field);
  }
  bool boolean(const json& v, const char* field) {
    if (v.is_boolean()) return v.get<bool>();
    fail(field, "not true or false: " + shown(v));
    return false;
  }
  std::vector<std::string> strings(const json& v, const char* field) {
    std::vector<std::string> out;
    for (const json& e : array(v, field)) out.push_back(string(e, field));
    return out;
  }
  void check(const Status& s) {
    if (!s.ok() && status_.ok()) status_ = Status::corruption(what_ + ": " + s.message());
  }
  const Status& status() const { return status_; }

 private:
  static std::string shown(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }
  void fail(const char* field, const std::string& why) {
    if (status_.ok()) status_ = Status::corruption(what_ + ": field " + field + " is " + why);
  }
  std::string what_;
  bool decimal_hashes_;
  json null_;
  Status status_;
};

}  // namespace

std::string node_check_to_json(const NodeCheck& c) {
  auto hashes = [](const std::map<PartitionId, PartitionHashes>& m) {
    json a = json::array();
    for (const auto& [pid, h] : m) {
      a.push_back({pid.first, pid.second, h.entries, hex64(h.key_value_hash), hex64(h.version_hash)});
    }
    return a;
  };
  json groups = json::array();
  for (const CacheGroup& g : c.groups) groups.push_back({g.id, g.name, static_cast<int>(g.mode), g.partitions, g.backups});
  json findings = json::array();
  for (const Finding& f : c.findings) {
    findings.push_back({f.kind, f.where, f.detail, f.file.empty() ? json(nullptr) : json(f.file),
                        f.offset ? json(*f.offset) : json(nullptr)});
  }
  json tx = json::array();
  for (const auto& [peer, h] : c.tx_hash) tx.push_back({peer, hex64(h), c.tx_count.at(peer)});
  json j{{"format", kMapFormat},       {"node_index", c.node_index}, {"node_id", c.node_id},
         {"increment", c.increment},   {"increments_read", c.increments_read},
         {"baseline", c.baseline},     {"groups", groups},
         {"findings", findings},       {"full", hashes(c.full)},     {"incremental", hashes(c.incremental)},
         {"tx", tx},                   {"files", c.files},           {"segments", c.segments},
         {"entries", c.entries},       {"bytes_read", c.bytes_read}};
  return j.dump();
}

Result<NodeCheck> node_check_from_json(const std::string& text, const std::string& what) {
  json j = json::parse(text, nullptr, false);
  auto format = j.is_object() ? j.find("format") : j.end();
  if (j.is_discarded() || !j.is_object() || format == j.end() ||
      (*format != kMapFormat && *format != kHexMapFormat && *format != kDecimalMapFormat)) {
    return Status::corruption(what + ": not a walcut check map file (format " + kMapFormat + ", " + kHexMapFormat +
                              " or " + kDecimalMapFormat + ")");
  }
  MapReader r(what, *format == kDecimalMapFormat);
  const bool current = *format == kMapFormat;
  NodeCheck c;
  c.node_index = r.uint<uint16_t>(r.member(j, "node_index"), "node_index");
  c.node_id = r.string(r.member(j, "node_id"), "node_id");
  c.increment = r.uint<uint64_t>(r.member(j, "increment"), "increment");
  // The older formats dropped a half-read node's hashes and its increment with them.
  c.increments_read = current ? r.boolean(r.member(j, "increments_read"), "increments_read") : c.increment > 0;
  c.baseline = r.strings(r.member(j, "baseline"), "baseline");
  for (const json& g : r.array(r.member(j, "groups"), "groups", 5)) {
    c.groups.push_back(CacheGroup{r.uint<uint32_t>(g[0], "groups"), r.string(g[1], "groups"),
                                  static_cast<CacheMode>(r.uint<uint8_t>(g[2], "groups")),
                                  r.uint<uint16_t>(g[3], "groups"), r.uint<uint16_t>(g[4], "groups")});
  }
  for (const json& f : r.array(r.member(j, "findings"), "findings", current ? 5 : 3)) {
    c.findings.push_back(Finding{r.string(f[0], "findings"), r.string(f[1], "findings"), r.string(f[2], "findings"),
                                 current ? r.string_or_null(f[3], "findings") : "",
                                 current ? r.uint_or_null(f[4], "findings") : std::nullopt});
  }
  for (const char* field : {"full", "incremental"}) {
    auto& m = std::string(field) == "full" ? c.full : c.incremental;
    for (const json& h : r.array(r.member(j, field), field, 5)) {
      m[PartitionId{r.uint<uint32_t>(h[0], field), r.uint<uint16_t>(h[1], field)}] =
          PartitionHashes{r.uint<uint64_t>(h[2], field), r.hash(h[3], field), r.hash(h[4], field)};
    }
  }
  for (const json& t : r.array(r.member(j, "tx"), "tx", 3)) {
    uint16_t peer = r.uint<uint16_t>(t[0], "tx");
    c.tx_hash[peer] = r.hash(t[1], "tx");
    c.tx_count[peer] = r.uint<uint64_t>(t[2], "tx");
  }
  c.files = r.uint<uint64_t>(r.member(j, "files"), "files");
  c.segments = r.uint<uint64_t>(r.member(j, "segments"), "segments");
  c.entries = r.uint<uint64_t>(r.member(j, "entries"), "entries");
  c.bytes_read = r.uint<uint64_t>(r.member(j, "bytes_read"), "bytes_read");
  // The names and groups are checked as the snapshot's own metadata is.
  r.check(validate_name("node id", c.node_id));
  for (const std::string& id : c.baseline) r.check(validate_name("node id", id));
  r.check(validate_groups(c.groups));
  if (!r.status().ok()) return r.status();
  if (c.node_index >= c.baseline.size()) return Status::corruption(what + ": node index outside its baseline");
  return c;
}

}  // namespace walcut
