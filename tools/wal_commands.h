// The `walcut wal ...` verbs: dump, stats, synth.
#pragma once

#include <CLI/CLI.hpp>

namespace walcut::cli {

// Registers `wal` and its verbs on `app`; each sets `exit_code` when it runs.
void add_wal_commands(CLI::App& app, int& exit_code);

}  // namespace walcut::cli
