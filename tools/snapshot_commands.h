// `walcut snapshot ...`: restore (and, later, check).
#pragma once

#include <CLI/CLI.hpp>

namespace walcut::cli {

void add_snapshot_commands(CLI::App& app, int& exit_code);

}  // namespace walcut::cli
