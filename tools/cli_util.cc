#include "tools/cli_util.h"

#include <cctype>
#include <cstdint>
#include <charconv>
#include <cstdio>
#include <filesystem>

#include "io/file_util.h"

namespace walcut::cli {

int fail(const Status& s) {
  std::fprintf(stderr, "walcut: %s\n", s.to_string().c_str());
  return s.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitData;
}

std::optional<uint64_t> parse_decimal(const std::string& text) {
  uint64_t v = 0;
  const char* end = text.data() + text.size();
  auto [stop, ec] = std::from_chars(text.data(), end, v);  // no sign, no spaces, no prefix
  if (text.empty() || ec != std::errc() || stop != end) return std::nullopt;
  return v;
}

CLI::Validator whole_number(uint64_t min, uint64_t max) {
  const std::string range = std::to_string(min) + ".." + std::to_string(max);
  auto check = [min, max, range](std::string& text) -> std::string {
    // CLI11 reads "010" as octal 8 after this check passed it as ten:
    // a leading 0 is refused, whatever was meant.
    if (text.size() > 1 && text[0] == '0') {
      return "must be a whole number in " + range + " without a leading 0, got '" + text + "'";
    }
    std::optional<uint64_t> v = parse_decimal(text);
    if (!v || *v < min || *v > max) {
      return "must be a whole number in " + range + ", got '" + text + "'";
    }
    return {};
  };
  return CLI::Validator(check, "[" + range + "]");
}

CLI::Validator not_empty() {
  return CLI::Validator([](std::string& text) -> std::string { return text.empty() ? "must not be empty" : ""; },
                        "");
}

void add_group_read_flag(CLI::App& app) {
  app.add_flag_callback("--group-read", [] { set_group_read(true); },
                        "Let the owner's group read what this creates: directories 0750 and files 0640 instead of "
                        "0700 and 0600, whatever the umask (a restore stays private when its snapshot is)");
}

void add_io_engine_flag(CLI::App& app, std::string& io) {
  app.add_option("--io", io, "I/O engine: auto (io_uring, else pread), uring, pread")
      ->check(CLI::IsMember({"auto", "uring", "pread"}))
      ->capture_default_str();
}

IoEngine io_engine_of(const std::string& io) {
  return io == "uring" ? IoEngine::kUring : io == "pread" ? IoEngine::kPread : IoEngine::kAuto;
}

void ReaderFlags::add_to(CLI::App& app) {
  add_io_engine_flag(app, io);
  app.add_flag("--direct", direct, "Read with O_DIRECT where the filesystem allows it");
  app.add_flag("--strict", strict, "Treat a torn tail as an error (as for snapshot segments)");
  sizes.add_to(app, "io_uring reads in flight");
}

void ReadSizeFlags::add_to(CLI::App& app, const std::string& queue_depth_help) {
  app.add_option("--queue-depth", queue_depth, queue_depth_help)->check(whole_number(1, 4096))->capture_default_str();
  app.add_option("--chunk-kib", chunk_kib, "KiB per read, a multiple of 4 (0: 256, or 1024 with --direct)")
      ->check(whole_number(0, 1 << 20))
      ->capture_default_str();
}

Status ReadSizeFlags::apply(ReadOptions& io) const {
  if (chunk_kib % 4 != 0)
    return Status::invalid_argument("--chunk-kib must be a multiple of 4, got " + std::to_string(chunk_kib));
  // A reader holds up to 2 x queue depth buffers of a chunk each (fewer
  // for files shorter than that): each flag within its range, the two
  // together could ask for terabytes.
  constexpr uint64_t kMostBufferBytes = uint64_t{2} << 30;
  const uint64_t chunk = chunk_kib > 0 ? uint64_t{chunk_kib} << 10 : default_chunk_bytes(io.direct);
  if (2 * queue_depth * chunk > kMostBufferBytes) {
    return Status::invalid_argument("--queue-depth " + std::to_string(queue_depth) + " with --chunk-kib " +
                                    std::to_string(chunk >> 10) + ": the read buffers could take " +
                                    std::to_string((2 * queue_depth * chunk) >> 20) +
                                    " MiB (2 x queue depth x chunk); at most " +
                                    std::to_string(kMostBufferBytes >> 20) + " MiB");
  }
  io.queue_depth = queue_depth;
  io.chunk_bytes = chunk_kib * 1024;
  return {};
}

Result<BlockReaderOptions> ReaderFlags::options() const {
  BlockReaderOptions o;
  o.io.engine = io_engine_of(io);
  o.io.direct = direct;
  WALCUT_RETURN_IF_ERROR(sizes.apply(o.io));
  o.mode = strict ? TailMode::kStrict : TailMode::kTolerateTornTail;
  return o;
}

Status require_directory(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return {};
  if (std::filesystem::exists(path, ec)) return Status::invalid_argument(path + ": not a directory");
  return Status::invalid_argument(path + ": no such directory");
}

std::string count_of(uint64_t n, const std::string& noun, const std::string& plural) {
  return std::to_string(n) + " " + (n == 1 ? noun : plural.empty() ? noun + "s" : plural);
}

Result<std::vector<std::string>> expand_segments(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (const std::string& a : args) {
    std::error_code ec;
    if (std::filesystem::is_directory(a, ec)) {
      Result<std::vector<std::string>> found = list_segment_files(a);
      if (!found.ok()) return found.status();
      if (found->empty()) return Status::invalid_argument(a + ": directory holds no segment files");
      out.insert(out.end(), found->begin(), found->end());
    } else if (std::filesystem::exists(a, ec)) {
      out.push_back(a);
    } else {
      return Status::invalid_argument(a + ": no such file or directory");
    }
  }
  return out;
}

std::optional<uint64_t> parse_byte_size(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 20) return std::nullopt;
  if (digits > 1 && text[0] == '0') return std::nullopt;  // 010: a leading 0, refused like every number's (cli.md)
  uint64_t n = 0;
  for (size_t i = 0; i < digits; ++i) {
    uint64_t next = n * 10 + static_cast<uint64_t>(text[i] - '0');
    if (next / 10 != n) return std::nullopt;
    n = next;
  }
  std::string suffix = text.substr(digits);
  if (!suffix.empty() && (suffix.back() == 'B' || suffix.back() == 'b')) suffix.pop_back();
  if (suffix.size() == 2 && (suffix[1] == 'i' || suffix[1] == 'I')) suffix.pop_back();
  if (suffix.empty()) return n;
  if (suffix.size() != 1) return std::nullopt;
  const std::string units = "KMGT";
  size_t unit = units.find(static_cast<char>(std::toupper(static_cast<unsigned char>(suffix[0]))));
  if (unit == std::string::npos) return std::nullopt;
  const size_t shift = 10 * (unit + 1);
  if (n > (UINT64_MAX >> shift)) return std::nullopt;
  return n << shift;
}

}  // namespace walcut::cli
