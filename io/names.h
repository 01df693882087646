// Names that become paths: node ids, cache group names, snapshot names, and
// the relative paths of manifests. Metadata may come from untrusted storage,
// so every decoder and every creator checks names here, and every path built
// from metadata is checked to stay under its root before it is opened.
#pragma once

#include <string>
#include <unordered_map>
#include <utility>

#include "io/status.h"

namespace walcut {

// Ok when `name` is usable as one path component: 1..255 bytes, not "." or
// "..", no '/', no NUL or other control character (bytes below 0x20, 0x7f).
// Otherwise kInvalidArgument "<kind> '<name>' is not usable as a name: <why>".
Status validate_name(const char* kind, const std::string& name);

// `root + "/" + rel` when `rel` is relative, each of its '/'-separated
// components passes validate_name, and none of those that exist under `root`
// is a symbolic link; otherwise kCorruption naming both: the path would
// leave `root` (or is not a plain path under it). `root` itself is trusted.
// Cost: one lstat per component.
Result<std::string> path_under(const std::string& root, const std::string& rel);

// path_under() for many paths under one root (a restore's thousands of
// partition files): a directory component is looked at once, then
// remembered (a directory, or missing). The last component of each path
// is looked at each time (an lstat), or, with `list_dirs`, found in its
// directory's listing, read once (readdir gives each name's type; an
// lstat only where the filesystem gives none): for many files in few
// directories, one readdir instead of an lstat per file. Not thread-safe.
class PathsUnder {
 public:
  explicit PathsUnder(std::string root, bool list_dirs = false) : root_(std::move(root)), list_dirs_(list_dirs) {}
  Result<std::string> path(const std::string& rel);

 private:
  // Whether `path` is a symbolic link, from the listing of its directory
  // (`path` up to `parent_end`, where the '/' before its name is).
  bool listed_symlink(const std::string& path, size_t parent_end);

  std::string root_;
  bool list_dirs_;
  std::unordered_map<std::string, bool> dirs_;  // a directory component's path: whether it exists
  // A listed directory's names and their types (DT_*); an empty map for
  // one that could not be listed.
  std::unordered_map<std::string, std::unordered_map<std::string, unsigned char>> listings_;
};

}  // namespace walcut
