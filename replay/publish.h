// Where a restore's result goes: one run at a time per destination, a
// staging directory private to the run, and a RESTORED file that records
// what was published, so a rerun can tell a finished restore from a tree
// changed since (docs/restore.md, "Publish").
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "engine/partition_file.h"
#include "io/file_util.h"
#include "io/status.h"
#include "replay/pipeline.h"

namespace walcut {

class RestoreDest {
 public:
  // Takes "<dest>.lock" beside dest (an flock: another run is "busy", an
  // I/O error, unless `wait`), and removes the staging directories of runs
  // into dest that died. Refuses a dest inside `snapshot_dir`.
  static Result<std::unique_ptr<RestoreDest>> open(const std::string& dest, const std::string& snapshot_dir, bool wait);
  // What open() and holds() would decide about `dest`, with the same
  // refusals and messages, read only: nothing made, no lock taken (a dry
  // run). True when dest holds the restore `stamp` names, its tree in
  // `modes` (what modes() would be). A parent that cannot be made for want
  // of permission is left to the restore to find.
  static Result<bool> check(const std::string& dest, const std::string& snapshot_dir, const std::string& stamp,
                            FileModes modes);
  ~RestoreDest();

  // Whether dest exists already: false when it does not or is an empty
  // directory (publish's rename replaces it); true when it
  // holds the restore `stamp` names and matches what its RESTORED records,
  // in modes() (Corruption naming the first difference otherwise);
  // InvalidArgument when it is anything else. Cost: one read of every file
  // of dest.
  Result<bool> holds(const std::string& stamp);
  // The modes of the published tree: created_modes(), never more readable
  // than the snapshot (modes_no_wider_than), found by open().
  FileModes modes() const { return modes_; }
  // The run's staging directory, created now: "<dest>.staging-<pid>-<random>".
  // It is removed unless published. What the run creates in it gets
  // created_modes(), narrowed to modes() at publish.
  Result<std::string> stage();
  // A file the run wrote into the staging tree at `path`, with the size
  // and CRC32C it computed as it wrote it: publish takes these instead of
  // reading the file back. Thread-safe.
  void note_written(const std::string& path, const PartitionFileWritten& written);
  // From now until the publish, a thread of the run's own writes back
  // what the run has written: one `sync` of the staging directory each
  // time another `step` bytes were noted, so that the publish's sync finds
  // little left to wait for. Its first error fails the publish. Only for
  // files whose pages would stay dirty until the publish
  // (PartitionWrite::kCreateCached): the sync writes spill files out too.
  void start_writeback(
      uint64_t step,
      std::function<Status(const std::string&)> sync = [](const std::string& dir) { return sync_filesystem(dir); });
  // Writes RESTORED (the stamp, then every directory and file of the
  // staging tree with its size and CRC32C: as noted, or read back when
  // not noted or no longer the size noted), syncs the filesystem and every
  // directory of the tree, and renames it to dest. The tree is never more
  // readable than the snapshot (modes_no_wider_than). Progress: phase
  // "publish", the tree's file bytes, read or noted.
  Status publish(const std::string& stamp, const std::function<void(const ReplayProgress&)>& progress);

  const std::string& dest() const { return dest_; }

 private:
  RestoreDest(std::string dest, FileModes modes, FileLock lock)
      : dest_(std::move(dest)), modes_(modes), lock_(std::move(lock)) {}

  std::string dest_;
  FileModes modes_;
  FileLock lock_;
  std::string staging_;
  bool published_ = false;
  std::mutex noted_mu_;
  std::unordered_map<std::string, PartitionFileWritten> noted_;  // by path under staging_
  // start_writeback()'s, under noted_mu_: its step (0: never started), bytes
  // noted since its last sync began, and the first error of its syncs (the
  // publish returns it: the publish's own sync may no longer see it).
  uint64_t writeback_step_ = 0;
  uint64_t unsynced_bytes_ = 0;
  Status writeback_error_;
  std::exception_ptr writeback_threw_;  // what a sync threw (out of memory): the publish rethrows it
  std::condition_variable_any noted_cv_;
  std::jthread writeback_;  // last: stopped and joined before the rest goes
};

}  // namespace walcut
