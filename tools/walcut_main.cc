// walcut: restore and check a partitioned store from its write-ahead log.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "replay/memory_limit.h"
#include "tools/cli_util.h"
#include "tools/dump_command.h"
#include "tools/gen_command.h"
#include "tools/help_text.h"
#include "tools/node_commands.h"
#include "tools/snapshot_commands.h"
#include "tools/wal_commands.h"
#include "walcut/version.h"

int main(int argc, char** argv) {
  walcut::reuse_freed_memory();  // partition-sized buffers come and go by the thousand
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? walcut::cli::kExitOk : walcut::cli::kExitUsage;
  } catch (const std::exception& e) {
    // A bug: every expected failure is a Status. Say so rather than abort.
    std::fprintf(stderr, "walcut: internal error: %s\n", e.what());
    return walcut::cli::kExitData;
  }
  return exit_code;
}
