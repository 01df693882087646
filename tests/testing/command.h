// Runs a shell command and collects what it prints, for tests of the walcut CLI.
#pragma once

#include <string>

namespace walcut::testing {

// Runs `command` with /bin/sh and returns its standard output (add 2>&1 for
// standard error). `exit_code` gets its exit status, or 128 + the signal
// that killed it.
std::string run_command(const std::string& command, int* exit_code = nullptr);

// `text` as one shell word: in single quotes, any quote in it escaped.
std::string shell_quote(const std::string& text);

}  // namespace walcut::testing
