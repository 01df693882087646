// Records rather than blocks: every record of the blocks a BlockReader
// gives, in WAL order, decompressed. For readers that take records one at
// a time on one thread; replay decodes blocks in parallel instead.
#pragma once

#include <functional>

#include "io/block.h"
#include "io/block_reader.h"

namespace walcut {

// Calls fn(block, record) for each record until the log ends, fn returns
// an error, or a block fails to decode; `on_block`, when given, first for
// each block. Errors keep their code and name the segment file and the
// block's offset. Cost: one LZ4 decompression per compressed block, into
// one reused buffer.
Status for_each_record(BlockReader& reader, const std::function<Status(const Block&, const RecordView&)>& fn,
                       const std::function<void(const Block&)>& on_block = {});
// The same for the records of the blocks `wanted` picks: the others are
// read and checked as BlockReader::next checks every block (header, CRC,
// pointer), but not decompressed nor parsed into records.
Status for_each_record_of(BlockReader& reader, const std::function<bool(const Block&)>& wanted,
                          const std::function<Status(const Block&, const RecordView&)>& fn);

}  // namespace walcut
