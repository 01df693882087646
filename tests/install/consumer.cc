// Writes a WAL through the installed library and reads it back.
#include <walcut/io/block.h>
#include <walcut/io/block_reader.h>
#include <walcut/io/file_util.h>
#include <walcut/io/wal_writer.h>
#include <walcut/version.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: walcut_consumer WAL_DIR\n");
    return 2;
  }
  walcut::WriterOptions o;
  o.dir = argv[1];
  o.segment_bytes = 1 << 20;
  auto w = walcut::WalWriter::open(o);
  if (!w.ok()) return std::fprintf(stderr, "%s\n", w.status().to_string().c_str()), 3;
  for (uint64_t i = 1; i <= 100; ++i) {
    if (!(*w)->append(walcut::CheckpointRecord{i}).ok()) return 3;
  }
  if (!(*w)->close().ok()) return 3;
  auto reader = walcut::BlockReader::open(walcut::list_segment_files(argv[1]).value(), {});
  if (!reader.ok()) return 3;
  walcut::Block b;
  walcut::Bytes scratch;
  uint64_t records = 0;
  while ((*reader)->next(b).value()) {
    auto raw = walcut::block_raw_payload(b.header, b.stored, scratch);
    walcut::Status s = walcut::for_each_record(b.header, raw.value(), [&](const walcut::RecordView&) {
      ++records;
      return walcut::Status{};
    });
    if (!s.ok()) return 3;
  }
  std::printf("walcut_consumer: read %llu records back through the installed package (walcut %s)\n",
              static_cast<unsigned long long>(records), WALCUT_VERSION_STRING);
  return records == 100 ? 0 : 1;
}
