#include "engine/meta_codec.h"

#include "engine/meta_identity.h"
#include "engine/snapshot.h"
#include "io/crc32c.h"
#include "io/file_util.h"

namespace walcut {

Bytes frame_metadata(uint64_t magic, uint32_t version, const Bytes& body) {
  Bytes out;
  Encoder o(out);
  o.u64(magic);
  o.u32(version);
  o.u32(static_cast<uint32_t>(body.size()));
  o.bytes(body);
  o.u32(crc32c(out));
  return out;
}

Result<ByteSpan> unframe_metadata(ByteSpan file, uint64_t magic, std::initializer_list<uint32_t> versions,
                                  const std::string& what, const char* kind) {
  if (file.size() < 20) return Status::corruption(what + ": " + std::to_string(file.size()) + " bytes, too short");
  WALCUT_RETURN_IF_ERROR(check_meta_magic(file, magic, what, kind));
  uint32_t body_bytes = load_u32(file.data() + 12);
  if (file.size() != 16 + size_t{body_bytes} + 4) {
    return Status::corruption(what + ": file is " + std::to_string(file.size()) + " bytes, its header says " +
                              std::to_string(16 + size_t{body_bytes} + 4));
  }
  if (load_u32(file.data() + 16 + body_bytes) != crc32c(file.first(16 + body_bytes))) {
    return Status::corruption(what + ": checksum mismatch at offset " + std::to_string(16 + body_bytes));
  }
  Result<uint32_t> version = check_meta_version(file, versions, what, kind);
  if (!version.ok()) return version.status();
  return file.subspan(16, body_bytes);
}

Result<Bytes> read_framed_file(const std::string& path) {
  constexpr uint64_t kMostBytes = 16 + uint64_t{UINT32_MAX} + 4;
  return read_file_bytes(path, [&](uint64_t size) {
    return size <= kMostBytes
               ? Status{}
               : Status::corruption(path + ": file is " + std::to_string(size) +
                                    " bytes, more than a metadata file can be (" + std::to_string(kMostBytes) + ")");
  });
}

void put_string(Encoder& e, const std::string& s) {
  e.u16(static_cast<uint16_t>(s.size()));
  e.bytes(as_bytes(s));
}

std::string get_string(Decoder& d) { return to_string(d.bytes(d.u16())); }

void put_strings(Encoder& e, const std::vector<std::string>& v) {
  e.u16(static_cast<uint16_t>(v.size()));
  for (const std::string& s : v) put_string(e, s);
}

std::vector<std::string> get_strings(Decoder& d) {
  std::vector<std::string> v;
  for (uint16_t n = d.u16(), i = 0; i < n && !d.failed(); ++i) v.push_back(get_string(d));
  return v;
}

void put_groups(Encoder& e, const std::vector<CacheGroup>& groups) {
  e.u16(static_cast<uint16_t>(groups.size()));
  for (const CacheGroup& g : groups) {
    e.u32(g.id);
    put_string(e, g.name);
    e.u8(static_cast<uint8_t>(g.mode));
    e.u16(g.partitions);
    e.u16(g.backups);
  }
}

std::vector<CacheGroup> get_groups(Decoder& d) {
  std::vector<CacheGroup> groups;
  for (uint16_t n = d.u16(), i = 0; i < n && !d.failed(); ++i) {
    CacheGroup g;
    g.id = d.u32();
    g.name = get_string(d);
    g.mode = static_cast<CacheMode>(d.u8());
    g.partitions = d.u16();
    g.backups = d.u16();
    groups.push_back(std::move(g));
  }
  return groups;
}

void put_manifest(Encoder& e, const std::vector<ManifestEntry>& files) {
  e.u32(static_cast<uint32_t>(files.size()));
  for (const ManifestEntry& f : files) {
    put_string(e, f.path);
    e.u64(f.bytes);
    e.u32(f.crc32c);
  }
}

Status check_manifest_order(const std::vector<ManifestEntry>& files) {
  for (size_t i = 1; i < files.size(); ++i) {
    if (files[i - 1].path < files[i].path) continue;
    return Status::invalid_argument("manifest entry " + std::to_string(i + 1) + " '" + files[i].path +
                                    (files[i - 1].path == files[i].path ? "' is listed twice"
                                                                        : "' comes after '" + files[i - 1].path +
                                                                              "' (a manifest is sorted by path)"));
  }
  return {};
}

std::vector<ManifestEntry> get_manifest(Decoder& d) {
  std::vector<ManifestEntry> files;
  uint32_t n = d.u32();
  for (uint32_t i = 0; i < n && !d.failed(); ++i) {
    ManifestEntry f;
    f.path = get_string(d);
    f.bytes = d.u64();
    f.crc32c = d.u32();
    files.push_back(std::move(f));
  }
  return files;
}

}  // namespace walcut
