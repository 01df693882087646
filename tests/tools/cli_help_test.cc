// walcut as a user meets it besides the data: the version it reports, each
// verb's --help (exit status and an example that runs), the man pages made
// from that help, and bash completion.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/testing/command.h"
#include "tests/testing/temp_dir.h"
#include "walcut/version.h"

namespace walcut {
namespace {

namespace fs = std::filesystem;
using testing::run_command;
using testing::shell_quote;
using testing::TempDir;

const std::string kCli = WALCUT_CLI;

// Every verb, in the order their examples can run one after another: `gen`
// writes what the others read, and `node recover` checkpoints a node of it.
const std::vector<std::string> kVerbs = {"gen",           "wal dump",         "wal stats",      "wal synth",
                                         "dump",          "snapshot info",    "snapshot restore", "snapshot check",
                                         "backup",        "node recover"};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// The lines of a help text's section ("Subcommands:", "Example:", ...), up to the next blank line.
std::vector<std::string> section(const std::string& help, const std::string& heading) {
  std::vector<std::string> lines = lines_of(help);
  auto it = std::find(lines.begin(), lines.end(), heading);
  if (it == lines.end()) return {};
  auto end = std::find(it + 1, lines.end(), "");
  return {it + 1, end};
}

std::string help_of(const std::string& verb) {
  int code = -1;
  std::string help = run_command(kCli + " " + verb + (verb.empty() ? "" : " ") + "--help 2>&1", &code);
  EXPECT_EQ(code, 0) << verb << ": " << help;
  return help;
}

// The verbs under `group` ("" for the top level), found by reading the help as a user would.
void find_verbs(const std::string& group, std::vector<std::string>& verbs) {
  std::vector<std::string> subcommands = section(help_of(group), "Subcommands:");
  if (subcommands.empty()) {
    verbs.push_back(group);
    return;
  }
  for (const std::string& line : subcommands) {
    std::string name = line.substr(2, line.find(' ', 2) - 2);
    find_verbs(group.empty() ? name : group + " " + name, verbs);
  }
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(Version, TheFlagPrintsTheVersionOfTheInstalledHeader) {
  EXPECT_EQ(WALCUT_VERSION_STRING, std::to_string(WALCUT_VERSION_MAJOR) + "." + std::to_string(WALCUT_VERSION_MINOR) +
                                       "." + std::to_string(WALCUT_VERSION_PATCH));
  static_assert(WALCUT_VERSION_NUMBER ==
                WALCUT_VERSION_MAJOR * 1000000 + WALCUT_VERSION_MINOR * 1000 + WALCUT_VERSION_PATCH);
  int code = -1;
  EXPECT_EQ(run_command(kCli + " --version", &code), std::string("walcut ") + WALCUT_VERSION_STRING + "\n");
  EXPECT_EQ(code, 0);
}

TEST(Help, TheVerbsFoundInTheHelpAreTheKnownOnes) {
  std::vector<std::string> found;
  find_verbs("", found);
  std::vector<std::string> expected = kVerbs;
  std::sort(found.begin(), found.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(found, expected);
}

// A word where a command belongs that names none is named, with the
// commands that word could have been (usage error, exit 2).
TEST(Help, AnUnknownCommandIsNamedWithTheCommandsThatExist) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"bogusverb", "walcut: 'bogusverb' is not a command; one of: wal, dump, gen, snapshot, backup, node"},
      {"snapshot restor /tmp/x", "walcut snapshot: 'restor' is not a command; one of: info, restore, check"},
      {"wal dumps", "walcut wal: 'dumps' is not a command; one of: dump, stats, synth"},
      {"-x",
       "walcut: '-x' is not a flag of walcut; the command comes first, one of: wal, dump, gen, snapshot, "
       "backup, node"},
      {"--dest /tmp/x snapshot restore /tmp/s",
       "walcut: '--dest' is not a flag of walcut; the command comes "
       "first, one of: wal, dump, gen, snapshot, backup, node"},
      {"snapshot --version",
       "walcut snapshot: '--version' is not a flag of walcut snapshot; the command comes "
       "first, one of: info, restore, check"},
  };
  for (const auto& [args, message] : cases) {
    int code = -1;
    const std::string out = run_command(kCli + " " + args + " 2>&1", &code);
    EXPECT_EQ(code, 2) << args << ": " << out;
    EXPECT_EQ(lines_of(out).front(), message) << args;
  }
  int code = -1;  // a leaf's own positionals are its business
  const std::string out = run_command(kCli + " snapshot info /nonexistent-snapshot 2>&1", &code);
  EXPECT_EQ(code, 2) << out;
  EXPECT_FALSE(contains(out, "is not a command")) << out;
}

TEST(Help, EveryVerbStatesItsExitStatusAndShowsAnExample) {
  for (const std::string& verb : kVerbs) {
    std::string help = help_of(verb);
    EXPECT_TRUE(contains(help, "Usage: walcut " + verb + " ")) << help;  // the name, not the path it was run by
    std::vector<std::string> exit_status = section(help, "Exit status:");
    ASSERT_GE(exit_status.size(), 2u) << verb << " states no exit status:\n" << help;
    EXPECT_EQ(exit_status.front().rfind("  0  ", 0), 0u) << verb << ": " << exit_status.front();
    EXPECT_TRUE(std::any_of(exit_status.begin(), exit_status.end(),
                            [](const std::string& l) { return l.rfind("  2  usage error", 0) == 0; }))
        << verb << ":\n" << help;
    std::vector<std::string> example = section(help, "Example:");
    ASSERT_EQ(example.size(), 1u) << verb << " shows no example:\n" << help;
    EXPECT_EQ(example[0].rfind("  walcut " + verb + " ", 0), 0u) << verb << ": " << example[0];
  }
}

TEST(Help, EveryVerbsExampleRunsAndExitsZero) {
  TempDir dir;
  for (const std::string& verb : kVerbs) {
    std::vector<std::string> lines = section(help_of(verb), "Example:");
    ASSERT_EQ(lines.size(), 1u) << verb;
    std::string example = lines[0].substr(2);
    // The examples work under /tmp; here they work in the test's own directory.
    for (size_t at = example.find("/tmp/"); at != std::string::npos; at = example.find("/tmp/", at + 1)) {
      example.replace(at, 5, dir.path() + "/");
    }
    int code = -1;
    std::string out = run_command(kCli + example.substr(6) + " 2>&1", &code);
    EXPECT_EQ(code, 0) << example << "\n" << out;
  }
}

#ifdef WALCUT_MAN_DIR
std::string text_of(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(ManPages, EveryVerbHasAPageFromItsHelpAndTheMainPageNamesEveryVerb) {
  const std::string man_dir = WALCUT_MAN_DIR;
  std::string main_page = text_of(man_dir + "/walcut.1");
  ASSERT_FALSE(main_page.empty()) << man_dir << "/walcut.1";
  EXPECT_TRUE(contains(main_page, ".TH WALCUT \"1\"")) << main_page;
  for (const std::string& verb : kVerbs) {
    std::string page_name = "walcut-" + verb;
    std::replace(page_name.begin(), page_name.end(), ' ', '-');
    EXPECT_TRUE(contains(main_page, "walcut " + verb)) << verb;
    std::string roff_name = page_name;  // man escapes the hyphens of names
    for (size_t at = roff_name.find('-'); at != std::string::npos; at = roff_name.find('-', at + 2)) {
      roff_name.replace(at, 1, "\\-");
    }
    EXPECT_TRUE(contains(main_page, ".BR " + roff_name + " (1)")) << verb << " is not under SEE ALSO";
    std::string page = text_of(man_dir + "/" + page_name + ".1");
    ASSERT_FALSE(page.empty()) << man_dir << "/" << page_name << ".1";
    EXPECT_TRUE(contains(page, ".SH \"EXIT STATUS\"\n.TP\n0\n")) << page;
    EXPECT_TRUE(contains(page, ".SH EXAMPLE\n.IP\nwalcut " + verb + " ")) << page;
  }
  std::string pages;
  for (const auto& entry : fs::directory_iterator(man_dir)) pages += entry.path().filename().string() + " ";
  EXPECT_EQ(std::count(pages.begin(), pages.end(), ' '), static_cast<long>(kVerbs.size() + 1)) << pages;
}
#endif

// What the completion function offers for the command line `words`, the last one being completed.
std::vector<std::string> complete(const std::vector<std::string>& words) {
  std::string command = "bash --norc --noprofile -c " +
                        shell_quote("source \"$0\" && COMP_WORDS=(\"$@\") && COMP_CWORD=$(($# - 1)) && _walcut && "
                                    "printf '%s\\n' \"${COMPREPLY[@]}\"") +
                        " " + shell_quote(WALCUT_COMPLETION) + " " + shell_quote(kCli);
  for (const std::string& w : words) command += " " + shell_quote(w);
  int code = -1;
  std::vector<std::string> offered = lines_of(run_command(command + " 2>&1", &code));
  EXPECT_EQ(code, 0);
  offered.erase(std::remove(offered.begin(), offered.end(), ""), offered.end());
  std::sort(offered.begin(), offered.end());
  return offered;
}

using Words = std::vector<std::string>;

TEST(BashCompletion, OffersTheVerbsAtEachLevel) {
  EXPECT_EQ(complete({""}), (Words{"backup", "dump", "gen", "node", "snapshot", "wal"}));
  EXPECT_EQ(complete({"s"}), (Words{"snapshot"}));
  EXPECT_EQ(complete({"snapshot", ""}), (Words{"check", "info", "restore"}));
  EXPECT_EQ(complete({"wal", "s"}), (Words{"stats", "synth"}));
}

TEST(BashCompletion, OffersAVerbsFlagsAndAFlagsChoices) {
  EXPECT_EQ(complete({"-"}), (Words{"--help", "--version", "-h"}));
  Words restore = complete({"snapshot", "restore", "/tmp/snp", "--"});
  for (const char* flag : {"--dest", "--increment", "--groups", "--node", "--threads", "--io", "--direct", "--json"}) {
    EXPECT_TRUE(std::find(restore.begin(), restore.end(), flag) != restore.end()) << flag;
  }
  Words dump = complete({"wal", "dump", "--"});
  for (const char* flag : {"--type", "--from", "--to", "--limit", "--xid", "--group", "--partition", "--json"}) {
    EXPECT_TRUE(std::find(dump.begin(), dump.end(), flag) != dump.end()) << flag;
  }
  EXPECT_EQ(complete({"snapshot", "info", "/tmp/snp", "--"}), (Words{"--hash", "--help", "--increment", "--json"}));
  EXPECT_EQ(complete({"wal", "dump", "--q"}), (Words{"--queue-depth"}));
  EXPECT_EQ(complete({"wal", "dump", "--io", ""}), (Words{"auto", "pread", "uring"}));
  EXPECT_EQ(complete({"snapshot", "check", "--io", "u"}), (Words{"uring"}));
}

TEST(BashCompletion, LeavesPathsAndFlagValuesToFilenameCompletion) {
  EXPECT_EQ(complete({"snapshot", "restore", ""}), Words{});
  EXPECT_EQ(complete({"snapshot", "restore", "snp", "--dest", ""}), Words{});
  EXPECT_EQ(complete({"backup", "/tmp/cluster", ""}), Words{});
}

}  // namespace
}  // namespace walcut
