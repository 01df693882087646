#include "tools/help_text.h"

#include <string>
#include <vector>

namespace walcut::cli {
namespace {

// One verb's exit codes (one "  N  meaning" line each) and example. The
// examples follow on from one another: `gen` writes what the others read.
struct VerbHelp {
  const char* verb;
  const char* exit_status;
  const char* example;
};

constexpr VerbHelp kVerbHelp[] = {
    {"wal dump",
     "  0  every record printed; a torn tail (tolerant mode) is a notice, not an error\n"
     "  2  usage error: a bad or missing argument or flag, a SEGMENT that does not exist\n"
     "  3  corruption or an I/O error, named by file and offset; the records before it are printed\n",
     "walcut wal dump /tmp/gen/cluster/node0/wal --type TX --json"},
    {"wal stats",
     "  0  counted; a torn tail (tolerant mode) is reported in the end line, not an error\n"
     "  2  usage error: a bad or missing argument or flag, a SEGMENT that does not exist\n"
     "  3  corruption of a segment or block, or an I/O error, named by file and offset (records are\n"
     "     counted by type, their payloads not decoded: wal dump decodes them)\n",
     "walcut wal stats /tmp/gen/cluster/node0/wal"},
    {"wal synth",
     "  0  written\n"
     "  2  usage error: a bad or missing argument or flag\n"
     "  3  an I/O error\n",
     "walcut wal synth /tmp/wal --transactions 10000 --threads 4 --codec lz4"},
    {"dump",
     "  0  printed (possibly nothing)\n"
     "  2  usage error: a bad or missing argument or flag, a DIR that is none of the three kinds, a --group it\n"
     "     does not hold\n"
     "  3  damaged data or an I/O error, named by file\n",
     "walcut dump /tmp/gen/snapshots/snp --group tx0"},
    {"gen",
     "  0  written\n"
     "  2  usage error: a bad or missing argument or flag, an --out directory that is not empty\n"
     "  3  an I/O error\n",
     "walcut gen --out /tmp/gen --seed 1 --txs 500 --increments 2"},
    {"snapshot info",
     "  0  printed\n"
     "  2  usage error: a bad or missing argument or flag, a SNAPSHOT_DIR that is not a directory, an\n"
     "     --increment beyond the snapshot's last\n"
     "  3  damaged or missing metadata, a broken increment chain, or with --hash a file snapshot check\n"
     "     would report\n",
     "walcut snapshot info /tmp/gen/snapshots/snp --increment 2 --hash"},
    {"snapshot restore",
     "  0  restored, or already restored; with --dry-run: everything the restore reads is sound\n"
     "  2  usage error: a bad or missing argument or flag, a SNAPSHOT_DIR that is not a directory, a --dest\n"
     "     that holds something else (an empty one is restored into) or is a mount point\n"
     "  3  damaged input or an I/O error, named by file (and offset, for segments)\n"
     "  129, 130, 143  stopped by SIGHUP, SIGINT or SIGTERM: nothing published, the staging directory\n"
     "     removed (a second signal kills at once; one during the publish lets it end: 0)\n",
     "walcut snapshot restore /tmp/gen/snapshots/snp --increment 2 --dest /tmp/restored"},
    {"snapshot check",
     "  0  clean (with --map-out: the map file written, whatever it found)\n"
     "  1  problems found, each printed\n"
     "  2  usage error: a bad or missing argument or flag, a SNAPSHOT_DIR that is not a directory, an unknown\n"
     "     --node\n"
     "  3  the snapshot cannot be checked: no or damaged .smf, an unreadable directory or map file\n",
     "walcut snapshot check /tmp/gen/snapshots/snp --increment 2"},
    {"backup",
     "  0  written\n"
     "  2  usage error: a bad or missing argument, a SRC of neither kind, a DEST directory for one node\n"
     "  3  a node that cannot be opened (damaged files) or an I/O error; files already written stay\n",
     "walcut backup /tmp/gen/cluster /tmp/backups"},
    {"node recover",
     "  0  recovered, checkpointed and closed\n"
     "  2  usage error: a bad or missing argument, a refused backup, a directory that is not a node\n"
     "  3  a damaged backup, damaged node files or an I/O error; the node's files stay as they were\n",
     "walcut node recover /tmp/gen/cluster/node0"},
};

// Every verb's exit codes, for the top-level help.
constexpr const char* kExitStatus =
    "  0  success\n"
    "  1  findings: snapshot check found at least one problem (no other verb returns 1)\n"
    "  2  usage error: a bad or missing argument or flag\n"
    "  3  data or I/O error: damaged input (named by file and offset), a failed read or write\n";

std::string footer(const std::string& exit_status, const std::string& example) {
  return "Exit status:\n" + exit_status + "\nExample:\n  " + example;
}

// Sets the footers under `app`, whose verb path is `verb` ("" at the top).
void add_footers(CLI::App& app, const std::string& verb) {
  std::vector<CLI::App*> subcommands = app.get_subcommands(nullptr);
  if (subcommands.empty()) {
    for (const VerbHelp& h : kVerbHelp) {
      if (verb == h.verb) app.footer(footer(h.exit_status, h.example));
    }
    return;
  }
  std::string footer_text = "Run 'walcut " + verb + (verb.empty() ? "" : " ") +
                            "VERB --help' for a verb's options, exit status and an example.";
  if (verb.empty()) footer_text = "Exit status:\n" + std::string(kExitStatus) + "\n" + footer_text;
  app.footer(footer_text);
  for (CLI::App* sub : subcommands) add_footers(*sub, verb.empty() ? sub->get_name() : verb + " " + sub->get_name());
}

}  // namespace

void add_help_footers(CLI::App& app) { add_footers(app, ""); }

}  // namespace walcut::cli
