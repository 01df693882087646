// walcut: restore and check a partitioned store from its write-ahead log.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <new>
#include <system_error>

#include "replay/memory_limit.h"
#include "tools/cli_util.h"
#include "tools/dump_command.h"
#include "tools/gen_command.h"
#include "tools/help_text.h"
#include "tools/node_commands.h"
#include "tools/snapshot_commands.h"
#include "tools/wal_commands.h"
#include "walcut/version.h"

namespace {

// `rc`, unless what was printed did not all reach stdout (a full disk, a
// closed descriptor): then exit 3, or a report or dump cut short would
// pass for whole.
int output_written(int rc) {
  errno = 0;
  std::cout.flush();
  if (std::fflush(stdout) == 0 && !std::ferror(stdout) && std::cout.good()) return rc;
  const int err = errno;
  std::fprintf(stderr, "walcut: write <stdout>: %s\n", err != 0 ? std::strerror(err) : "failed");
  return rc == walcut::cli::kExitOk || rc == walcut::cli::kExitFindings ? walcut::cli::kExitData : rc;
}

// "walcut bogus", "walcut snapshot bogus" or "walcut --dest x snapshot
// restore": the word where a command belongs that names none, or a flag
// given before its command. CLI11 says only "A subcommand is required".
// Empty when every word before the first leaf command names one, or is a
// flag of the command before it (--help, --version).
std::string unknown_command(const CLI::App& app, int argc, char** argv) {
  const CLI::App* at = &app;
  std::string path = "walcut";
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    const std::vector<const CLI::App*> commands = at->get_subcommands([](const CLI::App*) { return true; });
    if (commands.empty()) return "";
    std::string names;
    for (const CLI::App* c : commands) names += (names.empty() ? "" : ", ") + c->get_name();
    if (word.starts_with("-")) {  // above the leaves, flags take no values
      if (word != "--" && at->get_option_no_throw(word.substr(0, word.find('='))) != nullptr) continue;
      return path + ": '" + word + "' is not a flag of " + path + "; the command comes first, one of: " + names;
    }
    auto named = std::find_if(commands.begin(), commands.end(), [&](const CLI::App* c) { return c->check_name(word); });
    if (named == commands.end()) return path + ": '" + word + "' is not a command; one of: " + names;
    at = *named;
    path += " " + word;
  }
  return "";
}

// Parses the command line and runs the command; its exit status.
int run(int argc, char** argv) {
  // Named, so the help reads "Usage: walcut ..." however it was started (the man pages are made from it).
  CLI::App app{"walcut: fast, safe restore of a partitioned store from its write-ahead log", "walcut"};
  app.set_version_flag("--version", "walcut " WALCUT_VERSION_STRING);
  app.require_subcommand(1);
  int exit_code = walcut::cli::kExitOk;
  walcut::cli::add_wal_commands(app, exit_code);
  walcut::cli::add_dump_command(app, exit_code);
  walcut::cli::add_gen_command(app, exit_code);
  walcut::cli::add_snapshot_commands(app, exit_code);
  walcut::cli::add_node_commands(app, exit_code);
  walcut::cli::add_help_footers(app);
  if (const std::string unknown = unknown_command(app, argc, argv); !unknown.empty()) {
    std::fprintf(stderr, "%s\nRun with --help for more information.\n", unknown.c_str());
    return walcut::cli::kExitUsage;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return output_written(rc == 0 ? walcut::cli::kExitOk : walcut::cli::kExitUsage);
  }
  return output_written(exit_code);
}

// Raises the soft limit on open files to the hard one, as any process
// may: a memory-limited restore keeps each spill file open until its
// finish has read it back (replay/spill_file.h), thousands of them when
// the data is thousands of times the budget, and the soft limit is often
// 1024. Where the kernel refuses, the limit stays and an open past it
// says what it is (Status::from_errno).
void raise_open_file_limit() {
  rlimit files{};
  if (::getrlimit(RLIMIT_NOFILE, &files) != 0 || files.rlim_cur >= files.rlim_max) return;
  files.rlim_cur = files.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &files) == 0 || files.rlim_max != RLIM_INFINITY) return;
  files.rlim_cur = 1 << 20;  // an unlimited hard limit: the kernel's own bound (fs.nr_open) by default
  (void)::setrlimit(RLIMIT_NOFILE, &files);
}

}  // namespace

int main(int argc, char** argv) {
  walcut::reuse_freed_memory();  // partition-sized buffers come and go by the thousand
  raise_open_file_limit();
  // A file past `ulimit -f` is a failed write naming it (EFBIG), handled
  // like a full disk, not a kill that leaves a staging directory behind.
  ::signal(SIGXFSZ, SIG_IGN);
  try {
    return run(argc, argv);  // the commands' set-up included: it allocates too
  } catch (const std::bad_alloc&) {
    // Not a bug: the machine (or a limit set on the process) has no more
    // memory. Whatever was being written is discarded as on any failure.
    std::fprintf(stderr, "walcut: out of memory\n");
    return walcut::cli::kExitData;
  } catch (const std::system_error& e) {
    // No thread could be started (EAGAIN: a limit on threads or memory).
    if (e.code() == std::errc::resource_unavailable_try_again || e.code() == std::errc::not_enough_memory) {
      std::fprintf(stderr, "walcut: out of memory or threads: %s\n", e.what());
    } else {
      std::fprintf(stderr, "walcut: internal error: %s\n", e.what());
    }
    return walcut::cli::kExitData;
  } catch (const std::exception& e) {
    // oneTBB says it could not start a thread with a plain runtime_error.
    if (std::strstr(e.what(), "pthread_create") != nullptr) {
      std::fprintf(stderr, "walcut: out of memory or threads: %s\n", e.what());
      return walcut::cli::kExitData;
    }
    // A bug: every expected failure is a Status. Say so rather than abort.
    std::fprintf(stderr, "walcut: internal error: %s\n", e.what());
    return walcut::cli::kExitData;
  }
}
