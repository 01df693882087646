#include "replay/publish.h"

#include <fcntl.h>
#include <oneapi/tbb/parallel_for.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string_view>
#include <vector>

#include "io/crc32c.h"
#include "io/fault.h"
#include "replay/parallel.h"

namespace walcut {

namespace fs = std::filesystem;

namespace {

// One entry of a restored tree as RESTORED records it, one line each:
// "dir <path>" or "file <bytes> <crc32c, 8 hex digits> <path>".
struct TreeEntry {
  std::string path;  // relative to the tree's root
  bool dir = false;
  uint64_t bytes = 0;
  uint32_t crc32c = 0;
  mode_t mode = 0;  // found on disk; RESTORED does not record it (its identity's modes= line does)
  std::string line() const {
    if (dir) return "dir " + path + "\n";
    char crc[16];
    std::snprintf(crc, sizeof crc, "%08x", crc32c);
    return "file " + std::to_string(bytes) + " " + crc + " " + path + "\n";
  }
};

// The entries under `root` (RESTORED left out), sorted by path, with the
// files' sizes. Anything but a directory or a regular file is Corruption.
Result<std::vector<TreeEntry>> tree_of(const std::string& root) {
  Result<std::vector<DirEntry>> listed = list_directory(root, /*recursive=*/true);
  if (!listed.ok()) return listed.status();
  std::vector<TreeEntry> tree;
  tree.reserve(listed->size());
  for (DirEntry& e : listed.value()) {
    if (e.path == "RESTORED") continue;
    if (e.kind == DirEntry::Kind::kOther) {
      return Status::corruption(root + "/" + e.path + ": neither a directory nor a regular file");
    }
    if (e.path.find('\n') != std::string::npos) {
      return Status::corruption(root + "/" + e.path + ": a name with a line break");
    }
    tree.push_back(TreeEntry{std::move(e.path), e.kind == DirEntry::Kind::kDirectory, e.bytes, 0, e.mode});
  }
  return tree;
}

// Fills in the files' checksums: those `noted` at the size found, the rest
// by one read of the file, in parallel; each counted by `progress` when
// there is one.
Status add_checksums(const std::string& root, std::vector<TreeEntry>& tree, ProgressHub* progress = nullptr,
                     const std::unordered_map<std::string, PartitionFileWritten>* noted = nullptr) {
  FirstError error;
  tbb::parallel_for(size_t{0}, tree.size(), [&](size_t i) {
    if (tree[i].dir) return;
    if (noted) {
      auto it = noted->find(tree[i].path);
      if (it != noted->end() && it->second.bytes == tree[i].bytes) {
        tree[i].crc32c = it->second.crc32c;
        if (progress) progress->read(tree[i].bytes, "");
        return;
      }
    }
    Result<Bytes> bytes = read_file_bytes(root + "/" + tree[i].path);
    if (!bytes.ok()) return error.set(bytes.status());
    tree[i].crc32c = crc32c(bytes.value());
    if (progress) progress->read(tree[i].bytes, "");
  });
  return error.get();
}

// RESTORED's lines after the identity, back into entries.
Result<std::vector<TreeEntry>> parse_tree(const std::string& text, const std::string& what) {
  std::vector<TreeEntry> tree;
  size_t at = 0;
  for (size_t line = 1; at < text.size(); ++line) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) return Status::corruption(what + ": the last line is cut short");
    std::string l = text.substr(at, end - at);
    at = end + 1;
    TreeEntry e;
    char crc[9] = {};
    unsigned long long bytes = 0;
    int used = 0;
    if (l.rfind("dir ", 0) == 0 && l.size() > 4) {
      e.dir = true;
      e.path = l.substr(4);
    } else if (std::sscanf(l.c_str(), "file %llu %8[0-9a-f]%n", &bytes, crc, &used) == 2 && used > 0 &&
               static_cast<size_t>(used) + 1 < l.size() && l[static_cast<size_t>(used)] == ' ' &&
               std::strlen(crc) == 8) {
      e.bytes = bytes;
      e.crc32c = static_cast<uint32_t>(std::stoul(crc, nullptr, 16));
      e.path = l.substr(static_cast<size_t>(used) + 1);  // one space, then the path as it is (it may begin with one)
    } else {
      return Status::corruption(what + ": entry " + std::to_string(line) + " is malformed: " + l);
    }
    tree.push_back(std::move(e));
  }
  return tree;
}

// Whether `dest` holds the tree its RESTORED records: the same directories
// and files, each file its recorded size and checksum, and each the mode
// the restore gave it. Returns the first difference, in path order, as
// Corruption.
Status verify_published(const std::string& dest, const std::string& recorded_text, FileModes modes) {
  Result<std::vector<TreeEntry>> recorded = parse_tree(recorded_text, dest + "/RESTORED");
  if (!recorded.ok()) return recorded.status();
  auto differs = [&](const std::string& path, const std::string& what) {
    return Status::corruption("--dest " + dest + ": holds a restore that was changed since it was published: " + dest +
                              "/" + path + ": " + what + "; move it aside and restore again");
  };
  Result<std::vector<TreeEntry>> found = tree_of(dest);
  if (!found.ok()) return found.status();
  const std::vector<TreeEntry>& want = recorded.value();
  std::vector<TreeEntry>& have = found.value();
  for (size_t i = 0; i < std::max(want.size(), have.size()); ++i) {
    if (i == have.size() || (i < want.size() && want[i].path < have[i].path)) {
      return differs(want[i].path, "missing (RESTORED records it)");
    }
    if (i == want.size() || have[i].path < want[i].path) return differs(have[i].path, "not written by the restore");
    if (want[i].dir != have[i].dir) return differs(have[i].path, want[i].dir ? "not a directory" : "not a file");
    if (const mode_t m = want[i].dir ? modes.dir : modes.file; (have[i].mode & 07777) != m) {
      char what[64];
      std::snprintf(what, sizeof what, "mode %04o, the restore made it %04o", unsigned(have[i].mode & 07777),
                    unsigned(m));
      return differs(have[i].path, what);
    }
    if (want[i].bytes != have[i].bytes) {
      return differs(have[i].path,
                     std::to_string(have[i].bytes) + " bytes, the restore wrote " + std::to_string(want[i].bytes));
    }
  }
  WALCUT_RETURN_IF_ERROR(add_checksums(dest, have));
  for (size_t i = 0; i < want.size(); ++i) {
    if (have[i].crc32c != want[i].crc32c) return differs(want[i].path, "checksum differs from what the restore wrote");
  }
  return {};
}

// `p` without trailing slashes ("/" stays).
std::string without_trailing_slash(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string parent_of(const std::string& path) {
  std::string parent = fs::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

// Whether `name` is one make_staging() gives beside a dest named `base`:
// "<base>.staging-<pid>-<six of mkdtemp's letters>". Nothing else is
// taken for a stale staging: "prod.staging-2026" may be a restore of its
// own, "prod.staging-notes" someone's folder.
bool is_staging_name(std::string_view name, std::string_view base) {
  const std::string prefix = std::string(base) + ".staging-";
  if (!name.starts_with(prefix)) return false;
  std::string_view rest = name.substr(prefix.size());
  const size_t dash = rest.find('-');
  if (dash == 0 || dash == std::string_view::npos) return false;
  const std::string_view pid = rest.substr(0, dash), letters = rest.substr(dash + 1);
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  const auto letter = [&](char c) { return digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  return std::all_of(pid.begin(), pid.end(), digit) && letters.size() == 6 &&
         std::all_of(letters.begin(), letters.end(), letter);
}

// Staging directories of earlier runs into `dest` that died or were
// killed. Only while holding dest's lock, so none of them is a live run's.
Status remove_stale_stagings(const std::string& dest) {
  const std::string parent = parent_of(dest);
  const std::string base = fs::path(dest).filename().string();
  Result<std::vector<DirEntry>> entries = list_directory(parent);
  if (!entries.ok()) return entries.status();
  for (const DirEntry& e : entries.value()) {
    if (e.kind != DirEntry::Kind::kDirectory || !is_staging_name(e.path, base)) continue;
    const std::string path = parent + "/" + e.path;
    std::error_code ec;
    // A restore's own dest that only looks like a staging: its lock is
    // beside it, where a staging never has one.
    if (fs::exists(fs::symlink_status(path + ".lock", ec))) continue;
    fs::remove_all(path, ec);
    if (ec) return Status::from_error_code("remove the stale staging " + path, ec);
  }
  return {};
}

// A new staging directory of this run: "<dest>.staging-<pid>-<random>",
// with `dir_mode` (mkdtemp makes it 0700).
Result<std::string> make_staging(const std::string& dest, mode_t dir_mode) {
  std::string name = dest + ".staging-" + std::to_string(::getpid()) + "-XXXXXX";
  if (::mkdtemp(name.data()) == nullptr) return Status::from_errno("create a staging directory " + name, errno);
  if (::chmod(name.c_str(), dir_mode) != 0) {
    Status s = Status::from_errno("chmod " + name, errno);
    ::rmdir(name.c_str());  // a failed restore leaves only <dest>.lock
    return s;
  }
  return name;
}

// Whether the directory `dir` is the root of a mount (a bind mount
// included): a rename over it fails with EBUSY. STATX_ATTR_MOUNT_ROOT
// where the kernel knows it (5.8+), else a device other than its parent's.
bool is_mount_root(const std::string& dir) {
  struct statx sx {};
  if (::statx(AT_FDCWD, dir.c_str(), AT_SYMLINK_NOFOLLOW, 0, &sx) == 0 &&
      (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0) {
    return (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
  }
  struct stat self {};
  struct stat parent {};
  return ::lstat(dir.c_str(), &self) == 0 && ::stat((dir + "/..").c_str(), &parent) == 0 &&
         (self.st_dev != parent.st_dev || self.st_ino == parent.st_ino);
}

// The dest a restore into `dest_arg` publishes, with the refusals that
// need no lock: a dest inside the snapshot, or one that exists and cannot
// be any restore (refused before the lock file is made beside it, inside
// another tree, say; holds() checks the rest under the lock).
Result<std::string> dest_of(const std::string& dest_arg, const std::string& snapshot_dir) {
  if (dest_arg.empty()) return Status::invalid_argument("--dest is required");
  std::string dest = without_trailing_slash(dest_arg);
  // "d/." and ".." name a directory by a last component that is not its
  // name: the lock and the staging beside it would land inside it.
  if (const fs::path last = fs::path(dest).filename(); last == "." || last == "..") {
    dest = without_trailing_slash(fs::absolute(dest).lexically_normal().string());
    if (dest.empty()) dest = "/";
  }
  if (path_is_within(dest, snapshot_dir)) {
    return Status::invalid_argument("--dest " + dest + ": inside the snapshot " + snapshot_dir +
                                    "; restore to a directory outside it");
  }
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(dest, ec);
  const bool marked = fs::exists(dest + "/RESTORED", ec);
  if (fs::exists(st) && (!fs::is_directory(st) || (!fs::is_empty(dest, ec) && !marked))) {
    return Status::invalid_argument("--dest " + dest + ": exists and is not this restore (" +
                                    (fs::is_directory(st) ? "a directory without RESTORED" : "not a directory") +
                                    "); choose a new directory");
  }
  // Checked before anything is written: the tree is staged beside dest, on
  // the parent's file system, and only the publish's rename would fail.
  if (fs::is_directory(st) && !marked && is_mount_root(dest)) {
    return Status::invalid_argument("--dest " + dest +
                                    ": a mount point; the publish renames a directory over --dest, which a mount "
                                    "point refuses: restore into a new directory under it, e.g. " +
                                    (dest == "/" ? std::string() : dest) + "/cluster");
  }
  return dest;
}

// What make_directories(dir) would meet first at a file where a directory
// belongs (the nearest existing ancestor), making nothing.
Status check_directories(const std::string& dir) {
  std::error_code ec;
  for (fs::path p = dir; !p.empty(); p = p.parent_path()) {
    const fs::file_status st = fs::status(p, ec);
    if (fs::exists(st)) {
      return fs::is_directory(st) ? Status{} : Status::from_errno("create directory " + p.string(), ENOTDIR);
    }
    if (p == p.parent_path()) break;
  }
  return {};
}

// RESTORED's last line: "end <CRC32C of every line before it>\n".
std::string end_line(std::string_view lines) {
  char end[16];
  std::snprintf(end, sizeof end, "end %08x\n",
                crc32c(ByteSpan(reinterpret_cast<const std::byte*>(lines.data()), lines.size())));
  return end;
}

// Where a RESTORED begins otherwise than `stamp`: its first line that
// differs, beside the stamp's, or where it ends inside the identity.
std::string first_other_line(const std::string& text, const std::string& stamp) {
  size_t at = 0;
  while (at < stamp.size()) {
    if (at >= text.size()) return "its RESTORED ends inside the identity";
    const size_t end = stamp.find('\n', at);
    const std::string want = stamp.substr(at, end - at);
    const size_t text_end = text.find('\n', at);
    const std::string have = text.substr(at, text_end == std::string::npos ? std::string::npos : text_end - at);
    if (have != want) {
      return "its RESTORED says '" + have.substr(0, 200) + "' where this restore's is '" + want + "'";
    }
    at = end + 1;
  }
  return "its RESTORED differs";
}

// Whether `dest` holds the restore `stamp` names, its tree in `modes`
// (see RestoreDest::holds).
Result<bool> holds_restore(const std::string& dest, const std::string& stamp, FileModes modes) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dest, ec))) return false;
  // An empty directory is taken as a place to restore into: the rename of publish replaces it.
  if (fs::is_directory(fs::symlink_status(dest, ec)) && fs::is_empty(dest, ec) && !ec) return false;
  Result<Bytes> marker = read_file_bytes_no_follow(dest + "/RESTORED", {});
  if (!marker.ok()) {
    return Status::invalid_argument("--dest " + dest + ": exists and is not this restore (" +
                                    marker.status().message() + "); choose a new directory");
  }
  const std::string text = to_string(marker.value());
  if (!text.starts_with(stamp)) {
    return Status::invalid_argument("--dest " + dest + ": exists and is not this restore (" +
                                    first_other_line(text, stamp) + "); choose a new directory");
  }
  // Its last line says it is whole.
  const size_t end = text.rfind('\n', text.size() - 2) + 1;  // the last line's start; the stamp ends in '\n'
  const std::string want = end_line(std::string_view(text).substr(0, end));
  if (end < stamp.size() || text.compare(end, std::string::npos, want) != 0) {
    return Status::corruption("--dest " + dest + ": its RESTORED is cut short or was changed (its last line is not \"" +
                              want.substr(0, want.size() - 1) + "\"); move it aside and restore again");
  }
  WALCUT_RETURN_IF_ERROR(verify_published(dest, text.substr(stamp.size(), end - stamp.size()), modes));
  return true;
}

}  // namespace

Result<std::unique_ptr<RestoreDest>> RestoreDest::open(const std::string& dest_arg, const std::string& snapshot_dir,
                                                       bool wait) {
  Result<std::string> dest = dest_of(dest_arg, snapshot_dir);
  if (!dest.ok()) return dest.status();
  // One restore into dest at a time: the lock file beside it, kept after the run.
  WALCUT_RETURN_IF_ERROR(make_directories(parent_of(*dest)));
  Result<FileLock> lock = FileLock::lock_file(*dest + ".lock", *dest, wait);
  if (!lock.ok()) return lock.status();
  WALCUT_RETURN_IF_ERROR(remove_stale_stagings(*dest));
  Result<FileModes> modes = modes_no_wider_than(snapshot_dir);
  if (!modes.ok()) return modes.status();
  return std::unique_ptr<RestoreDest>(new RestoreDest(*dest, modes.value(), std::move(lock).value()));
}

Result<bool> RestoreDest::check(const std::string& dest_arg, const std::string& snapshot_dir, const std::string& stamp,
                                FileModes modes) {
  Result<std::string> dest = dest_of(dest_arg, snapshot_dir);
  if (!dest.ok()) return dest.status();
  WALCUT_RETURN_IF_ERROR(check_directories(parent_of(*dest)));
  return holds_restore(*dest, stamp, modes);
}

RestoreDest::~RestoreDest() {
  writeback_ = {};  // its sync ends before the staging tree goes
  std::error_code ec;
  if (!staging_.empty() && !published_) fs::remove_all(staging_, ec);  // a failed run leaves no staging behind
}

Result<bool> RestoreDest::holds(const std::string& stamp) { return holds_restore(dest_, stamp, modes_); }

Result<std::string> RestoreDest::stage() {
  Result<std::string> made = make_staging(dest_, modes_.dir);
  if (!made.ok()) return made.status();
  staging_ = made.value();
  return staging_;
}

void RestoreDest::note_written(const std::string& path, const PartitionFileWritten& written) {
  const std::string prefix = staging_ + "/";
  if (staging_.empty() || !path.starts_with(prefix)) return;  // not in this tree: read back if it is
  std::lock_guard<std::mutex> lock(noted_mu_);
  noted_[path.substr(prefix.size())] = written;
  unsynced_bytes_ += written.bytes;
  // Woken only when a sync is due: a wake-up a file cost 3% of a restore
  // of 4096 small files, on the writing thread and the woken one.
  if (writeback_step_ > 0 && unsynced_bytes_ >= writeback_step_) noted_cv_.notify_one();
}

void RestoreDest::start_writeback(uint64_t step, std::function<Status(const std::string&)> sync) {
  if (staging_.empty() || writeback_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(noted_mu_);
    writeback_step_ = std::max<uint64_t>(step, 1);  // 0 would sync for ever, and never see the stop
  }
  writeback_ = std::jthread([this, step = writeback_step_, sync = std::move(sync)](std::stop_token stop) {
    pthread_setname_np(pthread_self(), "walcut-wb");  // as top -H and /proc/PID/task show it
    std::unique_lock<std::mutex> lock(noted_mu_);
    try {  // an exception leaving a thread of its own would end the process
      while (noted_cv_.wait(lock, stop, [&] { return unsynced_bytes_ >= step; })) {
        unsynced_bytes_ = 0;
        lock.unlock();
        Status s = sync(staging_);
        lock.lock();
        if (!s.ok() && writeback_error_.ok()) writeback_error_ = s;
      }
    } catch (...) {
      if (!lock.owns_lock()) lock.lock();
      writeback_threw_ = std::current_exception();  // no allocation: it refers to the thrown object
    }
  });
}

Status RestoreDest::publish(const std::string& stamp, const std::function<void(const ReplayProgress&)>& progress) {
  // RESTORED records what is in the staging tree: the files the finish
  // noted with the checksums it computed as it wrote them, any other file
  // (node.meta, one not noted or no longer the size noted) read back.
  Result<std::vector<TreeEntry>> tree = tree_of(staging_);
  if (!tree.ok()) return tree.status();
  uint64_t bytes = 0;
  size_t restored_bytes = stamp.size();  // about: "file <size> <crc> <path>\n" is the path and 20-40 more
  for (const TreeEntry& e : tree.value()) {
    bytes += e.dir ? 0 : e.bytes;
    restored_bytes += e.path.size() + 32;
  }
  ProgressHub hub(progress, "publish", bytes);
  hub.report();
  WALCUT_RETURN_IF_ERROR(add_checksums(staging_, tree.value(), &hub, &noted_));
  {
    std::lock_guard<std::mutex> lock(noted_mu_);
    std::unordered_map<std::string, PartitionFileWritten>().swap(noted_);  // taken into the tree
  }
  std::string restored = stamp;
  restored.reserve(restored_bytes);
  for (const TreeEntry& e : tree.value()) restored += e.line();
  restored += end_line(restored);
  // The writeback thread stops: a sync of its own still running goes on beside this one.
  writeback_.request_stop();
  WALCUT_RETURN_IF_ERROR(sync_filesystem(staging_));  // every partition file, before RESTORED says it is whole
  writeback_ = {};
  {
    std::lock_guard<std::mutex> lock(noted_mu_);
    if (writeback_threw_) std::rethrow_exception(writeback_threw_);
    WALCUT_RETURN_IF_ERROR(writeback_error_);
  }
  WALCUT_RETURN_IF_ERROR(write_file_synced(staging_ + "/RESTORED", as_bytes(restored)));
  if (modes_ != created_modes()) WALCUT_RETURN_IF_ERROR(set_tree_modes(staging_, modes_));
  WALCUT_RETURN_IF_ERROR(sync_tree(staging_));
  fault::point("restore.staged");
  if (::rename(staging_.c_str(), dest_.c_str()) != 0) {
    return Status::from_errno("rename " + staging_ + " to " + dest_, errno);
  }
  published_ = true;
  fault::point("restore.renamed");
  // The one failure after the rename: the tree is whole, its name may not
  // be durable yet.
  if (Status synced = sync_dir(parent_of(dest_)); !synced.ok()) {
    return Status(synced.code(), synced.message() + ", after " + dest_ +
                                     " was published whole: a crash now may lose it; run the restore again to "
                                     "verify it");
  }
  hub.report();  // the phase's end, at its total
  return {};
}

}  // namespace walcut
