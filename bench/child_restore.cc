#include "bench/child_restore.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "io/file_util.h"

namespace walcut::bench {
namespace {

namespace fs = std::filesystem;

// A whole small file, "" when unreadable; read to its end, not sized by
// stat: cgroup and proc files report size 0.
std::string text_of(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

Status write_text(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return Status::from_errno("open " + path, errno);
  ssize_t n = ::write(fd, text.data(), text.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) return Status::from_errno("write '" + text + "' to " + path, err);
  return {};
}

// `key value` lines (memory.events) -> the value of `key`, 0 when absent.
uint64_t keyed_value(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string k;
  uint64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

bool has_word(const std::string& text, const std::string& word) {
  std::istringstream in(text);
  std::string w;
  while (in >> w) {
    if (w == word) return true;
  }
  return false;
}

}  // namespace

std::string ChildRun::describe() const {
  if (exited) return "exit " + std::to_string(exit_code);
  return "killed by signal " + std::to_string(signal) + " (" + ::strsignal(signal) + ")";
}

namespace {

// The v2 mount whose children get the memory controller, or why not.
Result<std::string> find_v2_root(const std::string& mount_point) {
  const std::string controls = first_line(text_of(mount_point + "/cgroup.subtree_control"));
  if (!has_word(controls, "memory")) {
    return Status::not_found("the cgroup v2 hierarchy at " + mount_point +
                             " does not give its children the memory controller (cgroup.subtree_control: \"" +
                             controls + "\")");
  }
  return mount_point;
}

// The v1 memory hierarchy: this process's own cgroup in it (children of
// it inherit its limits, which is what a nested limit needs).
Result<std::string> find_v1_root(const std::string& mount_point) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    // hierarchy-id:controllers:path
    const size_t a = line.find(':');
    const size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::istringstream controllers(line.substr(a + 1, b - a - 1));
    std::string c;
    while (std::getline(controllers, c, ',')) {
      if (c == "memory") return mount_point + line.substr(b + 1);
    }
  }
  return Status::not_found("/proc/self/cgroup names no cgroup v1 memory hierarchy");
}

}  // namespace

Result<std::string> MemoryCgroup::find_root() {
  std::ifstream mounts("/proc/self/mounts");
  std::string device, mount_point, type, options;
  std::string v2, v1;
  while (mounts >> device >> mount_point >> type >> options) {
    std::string rest;
    std::getline(mounts, rest);
    if (type == "cgroup2" && v2.empty()) v2 = mount_point;
    std::istringstream opts(options);
    std::string o;
    while (type == "cgroup" && std::getline(opts, o, ',')) {
      if (o == "memory") v1 = mount_point;
    }
  }
  std::string why = "no cgroup v2 filesystem is mounted (/proc/self/mounts)";
  Result<std::string> root = Status::not_found(why);
  if (!v2.empty()) root = find_v2_root(v2);
  if (!root.ok() && !v1.empty()) {
    why = root.status().message();
    root = find_v1_root(v1);
    if (!root.ok()) root = Status::not_found(why + "; " + root.status().message());
  }
  if (!root.ok()) return root;
  if (::access(root->c_str(), W_OK) != 0) return Status::from_errno("cgroup at " + *root + " is not writable", errno);
  return root;
}

Result<std::unique_ptr<MemoryCgroup>> MemoryCgroup::create(const std::string& root, const std::string& name,
                                                           uint64_t memory_max_bytes) {
  const std::string dir = root + "/" + name;
  if (::mkdir(dir.c_str(), 0755) != 0) return Status::from_errno("mkdir " + dir, errno);
  std::error_code ec;
  const bool v1 = fs::exists(dir + "/memory.limit_in_bytes", ec);
  std::unique_ptr<MemoryCgroup> cg(new MemoryCgroup(dir, v1));  // from here on, removed on every return
  const std::string limit = std::to_string(memory_max_bytes);
  if (v1) {
    WALCUT_RETURN_IF_ERROR(write_text(dir + "/memory.limit_in_bytes", limit));
    // memory+swap at the same value: the limit is not met by swapping.
    if (fs::exists(dir + "/memory.memsw.limit_in_bytes", ec)) {
      WALCUT_RETURN_IF_ERROR(write_text(dir + "/memory.memsw.limit_in_bytes", limit));
    }
    return cg;
  }
  WALCUT_RETURN_IF_ERROR(write_text(dir + "/memory.max", limit));
  if (fs::exists(dir + "/memory.swap.max", ec)) WALCUT_RETURN_IF_ERROR(write_text(dir + "/memory.swap.max", "0"));
  return cg;
}

MemoryCgroup::~MemoryCgroup() {
  // The child has been reaped, but the kernel may take a moment to let the cgroup go.
  for (int i = 0; i < 100 && ::rmdir(dir_.c_str()) != 0 && errno == EBUSY; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

uint64_t MemoryCgroup::memory_peak_bytes() const {
  const std::string t = text_of(dir_ + (v1_ ? "/memory.max_usage_in_bytes" : "/memory.peak"));
  return t.empty() ? 0 : std::strtoull(t.c_str(), nullptr, 10);
}

uint64_t MemoryCgroup::oom_kills() const {
  return keyed_value(text_of(dir_ + (v1_ ? "/memory.oom_control" : "/memory.events")), "oom_kill");
}

// ---- the spawner ----
//
// A child's ru_maxrss counts the resident pages of the process it was
// forked from: exec records the copied address space's RSS as the child's
// high-water mark. Forked from the bench after it restored gigabytes, every
// child would report them. So children are forked by a spawner process,
// itself forked when the bench starts and is still small; the bench sends
// it requests over a pipe.

namespace {

int g_request_fd = -1;  // bench -> spawner
int g_reply_fd = -1;    // spawner -> bench

struct Reply {
  int32_t setup_errno = 0;  // opening an output file or cgroup.procs failed in the spawner
  int32_t fork_errno = 0;
  int32_t status = 0;       // from wait4
  int64_t max_rss_kib = 0;  // ru_maxrss
  int64_t wall_ns = 0;      // fork to wait4
};

bool read_all(int fd, void* data, size_t n) {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    ssize_t got = ::read(fd, p, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

bool write_all(int fd, const void* data, size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t put = ::write(fd, p, n);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) return false;
    p += put;
    n -= static_cast<size_t>(put);
  }
  return true;
}

// A request: count, then each field as length and bytes. Fields: the
// cgroup.procs path ("" for none), the stdout and stderr paths, argv.
bool send_fields(int fd, const std::vector<std::string>& fields) {
  uint32_t n = static_cast<uint32_t>(fields.size());
  if (!write_all(fd, &n, sizeof n)) return false;
  for (const std::string& f : fields) {
    uint32_t len = static_cast<uint32_t>(f.size());
    if (!write_all(fd, &len, sizeof len) || !write_all(fd, f.data(), f.size())) return false;
  }
  return true;
}

bool receive_fields(int fd, std::vector<std::string>& fields) {
  uint32_t n = 0;
  if (!read_all(fd, &n, sizeof n)) return false;
  fields.assign(n, std::string());
  for (std::string& f : fields) {
    uint32_t len = 0;
    if (!read_all(fd, &len, sizeof len)) return false;
    f.resize(len);
    if (!read_all(fd, f.data(), len)) return false;
  }
  return true;
}

// One request in the spawner: fork, move into the cgroup, redirect, exec, reap.
Reply serve(const std::vector<std::string>& fields) {
  Reply r;
  const std::string& procs = fields[0];
  int out_fd = ::open(fields[1].c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err_fd = ::open(fields[2].c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int procs_fd = procs.empty() ? -2 : ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
  if (out_fd < 0 || err_fd < 0 || procs_fd == -1) {
    r.setup_errno = errno;
  } else {
    std::vector<char*> args;
    for (size_t i = 3; i < fields.size(); ++i) args.push_back(const_cast<char*>(fields[i].c_str()));
    args.push_back(nullptr);
    static const char kMoveFailed[] = "walcut_restore_bench: could not move the child into its cgroup\n";
    auto start = std::chrono::steady_clock::now();
    pid_t pid = ::fork();
    if (pid == 0) {
      if (procs_fd >= 0 && ::write(procs_fd, "0", 1) != 1) {  // "0": the writing process itself
        [[maybe_unused]] ssize_t n = ::write(err_fd, kMoveFailed, sizeof kMoveFailed - 1);
        ::_exit(126);
      }
      if (::dup2(out_fd, STDOUT_FILENO) < 0 || ::dup2(err_fd, STDERR_FILENO) < 0) ::_exit(126);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    if (pid < 0) {
      r.fork_errno = errno;
    } else {
      int status = 0;
      rusage usage{};
      while (::wait4(pid, &status, 0, &usage) < 0 && errno == EINTR) {
      }
      r.status = status;
      r.max_rss_kib = usage.ru_maxrss;
      r.wall_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
                      .count();
    }
  }
  for (int fd : {out_fd, err_fd, procs_fd}) {
    if (fd >= 0) ::close(fd);
  }
  return r;
}

}  // namespace

Status start_spawner() {
  if (g_request_fd >= 0) return {};
  int request[2], reply[2];
  if (::pipe2(request, O_CLOEXEC) != 0) return Status::from_errno("pipe for the spawner", errno);
  if (::pipe2(reply, O_CLOEXEC) != 0) {
    int err = errno;
    ::close(request[0]);
    ::close(request[1]);
    return Status::from_errno("pipe for the spawner", err);
  }
  std::fflush(nullptr);  // nothing buffered is written twice
  pid_t pid = ::fork();
  if (pid < 0) return Status::from_errno("fork the spawner", errno);
  if (pid == 0) {
    ::close(request[1]);
    ::close(reply[0]);
    std::vector<std::string> fields;
    while (receive_fields(request[0], fields) && fields.size() >= 4) {
      Reply r = serve(fields);
      if (!write_all(reply[1], &r, sizeof r)) break;
    }
    ::_exit(0);  // the bench closed its end: it is done
  }
  ::close(request[0]);
  ::close(reply[1]);
  g_request_fd = request[1];
  g_reply_fd = reply[0];
  return {};
}

Result<ChildRun> run_child(const std::vector<std::string>& argv, const std::string& scratch_dir,
                           const MemoryCgroup* cgroup) {
  if (g_request_fd < 0) return Status::invalid_argument("run_child: start_spawner() was not called");
  const std::string out_path = scratch_dir + "/child.stdout", err_path = scratch_dir + "/child.stderr";
  const std::string procs = cgroup != nullptr ? cgroup->dir() + "/cgroup.procs" : "";
  std::vector<std::string> fields = {procs, out_path, err_path};
  fields.insert(fields.end(), argv.begin(), argv.end());
  Reply reply;
  if (!send_fields(g_request_fd, fields) || !read_all(g_reply_fd, &reply, sizeof reply)) {
    return Status::io_error("the spawner process is gone");
  }
  if (reply.setup_errno != 0) {
    return Status::from_errno("open " + out_path + ", " + err_path + (procs.empty() ? "" : " or " + procs),
                              reply.setup_errno);
  }
  if (reply.fork_errno != 0) return Status::from_errno("fork for " + argv[0], reply.fork_errno);
  ChildRun r;
  r.wall_s = static_cast<double>(reply.wall_ns) / 1e9;
  r.exited = WIFEXITED(reply.status);
  r.exit_code = r.exited ? WEXITSTATUS(reply.status) : -1;
  r.signal = WIFSIGNALED(reply.status) ? WTERMSIG(reply.status) : 0;
  r.max_rss_bytes = static_cast<uint64_t>(reply.max_rss_kib) * 1024;  // KiB on Linux
  r.stdout_text = text_of(out_path);
  r.stderr_text = text_of(err_path);
  std::error_code ec;
  fs::remove(out_path, ec);
  fs::remove(err_path, ec);
  if (r.exited && r.exit_code == 127) return Status::io_error("cannot run " + argv[0] + ": exec failed");
  return r;
}

Result<ChildRun> restore_help(const std::string& cli, const std::string& scratch_dir) {
  return run_child({cli, "snapshot", "restore", "--help"}, scratch_dir, nullptr);
}

Result<std::string> first_tree_difference(const std::string& a, const std::string& b, const std::string& skip) {
  // relative path -> is a directory, for each side
  auto listing = [&](const std::string& root) -> Result<std::map<std::string, bool>> {
    std::map<std::string, bool> out;
    std::error_code ec;
    for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
      std::string rel = fs::relative(it->path(), root, ec).string();
      if (rel != skip) out[rel] = it->is_directory(ec);
    }
    if (ec) return Status::io_error("list " + root + ": " + ec.message());
    return out;
  };
  Result<std::map<std::string, bool>> left = listing(a);
  if (!left.ok()) return left.status();
  Result<std::map<std::string, bool>> right = listing(b);
  if (!right.ok()) return right.status();
  for (const auto& [rel, is_dir] : *left) {
    auto it = right->find(rel);
    if (it == right->end()) return rel + ": only in " + a;
    if (it->second != is_dir) return rel + ": a directory on one side only";
    if (is_dir) continue;
    Result<Bytes> x = read_file_bytes(a + "/" + rel);
    if (!x.ok()) return x.status();
    Result<Bytes> y = read_file_bytes(b + "/" + rel);
    if (!y.ok()) return y.status();
    if (x->size() != y->size()) {
      return rel + ": " + std::to_string(x->size()) + " bytes against " + std::to_string(y->size());
    }
    if (std::memcmp(x->data(), y->data(), x->size()) != 0) return rel + ": same size, different bytes";
  }
  for (const auto& [rel, is_dir] : *right) {
    if (!left->count(rel)) return rel + ": only in " + b;
  }
  return std::string();
}

Result<uint64_t> restored_partition_bytes(const std::string& dest) {
  uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dest, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    fs::path rel = fs::relative(it->path(), dest, ec);
    auto part = rel.begin();
    if (part == rel.end() || ++part == rel.end() || *part != "db") continue;
    total += it->file_size(ec);
  }
  if (ec) return Status::io_error("list " + dest + ": " + ec.message());
  return total;
}

}  // namespace walcut::bench
