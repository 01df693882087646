// The end of every verb's --help: its exit status and one example. The man
// pages are made from this help at build time (docs/cli.md).
#pragma once

#include <CLI/CLI.hpp>

namespace walcut::cli {

// Sets the footer of `app` and of every verb under it; call it once every verb is added.
void add_help_footers(CLI::App& app);

}  // namespace walcut::cli
