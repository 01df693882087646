// `walcut gen`: the deterministic cluster simulator.
#pragma once

#include <CLI/CLI.hpp>

namespace walcut::cli {

void add_gen_command(CLI::App& app, int& exit_code);

}  // namespace walcut::cli
