#include "io/names.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>

namespace walcut {

namespace {

// Why `name` is not one usable path component, or nullptr.
const char* name_problem(const std::string& name) {
  if (name.empty()) return "empty";
  if (name.size() > 255) return "longer than 255 bytes";
  if (name == "." || name == "..") return "'.' or '..'";
  if (name.find('/') != std::string::npos) return "holds a '/'";
  bool control = std::any_of(name.begin(), name.end(), [](char c) {
    auto b = static_cast<unsigned char>(c);
    return b < 0x20 || b == 0x7f;
  });
  return control ? "holds a control character" : nullptr;
}

}  // namespace

Status validate_name(const char* kind, const std::string& name) {
  const char* why = name_problem(name);
  if (!why) return {};
  return Status::invalid_argument(std::string(kind) + " '" + name + "' is not usable as a name: " + why);
}

Result<std::string> path_under(const std::string& root, const std::string& rel) { return PathsUnder(root).path(rel); }

Result<std::string> PathsUnder::path(const std::string& rel) {
  std::string path = root_;
  bool exists = true;  // the components so far: once one is missing, so are those below it
  for (size_t begin = 0, end = 0; end != std::string::npos; begin = end + 1) {
    end = rel.find('/', begin);
    std::string part = rel.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    if (const char* why = name_problem(part)) {
      return Status::corruption(root_ + ": the path '" + rel + "' is not a plain path under it (a component is " +
                                why + ")");
    }
    const size_t parent_end = path.size();
    path += '/';
    path += part;
    if (!exists) continue;
    const bool last = end == std::string::npos;
    if (!last) {
      if (auto known = dirs_.find(path); known != dirs_.end()) {
        exists = known->second;
        continue;
      }
    }
    bool symlink = false;
    if (last && list_dirs_) {
      symlink = listed_symlink(path, parent_end);
    } else {
      struct stat st;
      exists = ::lstat(path.c_str(), &st) == 0;
      symlink = exists && S_ISLNK(st.st_mode);
    }
    if (symlink) {
      return Status::corruption(root_ + ": the path '" + rel + "' passes through the symbolic link " + path);
    }
    if (!last) dirs_.emplace(path, exists);
  }
  return path;
}

bool PathsUnder::listed_symlink(const std::string& path, size_t parent_end) {
  auto [at, added] = listings_.try_emplace(path.substr(0, parent_end));
  if (added) {
    if (DIR* d = ::opendir(at->first.c_str())) {
      while (const dirent* e = ::readdir(d)) at->second.emplace(e->d_name, e->d_type);
      ::closedir(d);
    }
  }
  auto it = at->second.find(path.substr(parent_end + 1));
  if (it != at->second.end() && it->second != DT_UNKNOWN) return it->second == DT_LNK;
  // Not listed (created since, or the directory could not be read) or no type given: look.
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

}  // namespace walcut
