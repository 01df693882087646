// `walcut backup` and `walcut node recover`.
#pragma once

#include <CLI/CLI.hpp>

namespace walcut::cli {

void add_node_commands(CLI::App& app, int& exit_code);

}  // namespace walcut::cli
