// `walcut dump DIR`: the entries of every partition copy in a node
// directory, a cluster directory, or a snapshot's db/ tree.
#pragma once

#include <CLI/CLI.hpp>

namespace walcut::cli {

void add_dump_command(CLI::App& app, int& exit_code);

}  // namespace walcut::cli
