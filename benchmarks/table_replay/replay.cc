// Replays a log of trace-table operations (src/core/op_log.h) into a
// TraceTable, so that its cost per operation can be counted under
// cachegrind without Python in the loop. Built and run by
// benchmarks/table_replay.sh.
//   replay LOG       load the log and replay it once
//   replay LOG load  load the log and read it once (the baseline to subtract)
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/trace_table.h"

namespace {

// As in op_log.h, which this file does not include: the replay is compiled
// against older revisions of the trace table too.
constexpr unsigned kOpShift = 62;
constexpr std::uint64_t kInsert = 1;

// As the engine inserts: insert_fresh() where the table has it.
template <typename Table>
void insert_as_engine(Table& table, std::uintptr_t address, std::size_t size,
                      std::uint32_t traceback) {
  if constexpr (requires { table.insert_fresh(address, size, traceback); }) {
    table.insert_fresh(address, size, traceback);
  } else {
    table.insert(address, size, traceback);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 || (argc == 3 && std::strcmp(argv[2], "load") != 0)) {
    std::fprintf(stderr, "usage: %s LOG [load]\n", argv[0]);
    return 2;
  }
  std::FILE* in = std::fopen(argv[1], "rb");
  if (in == nullptr) {
    std::perror(argv[1]);
    return 1;
  }
  std::vector<std::uint64_t> words;
  std::uint64_t record[2];
  while (std::fread(record, sizeof(record), 1, in) == 1)
    words.insert(words.end(), record, record + 2);
  std::fclose(in);
  if (argc == 3) {
    // The baseline: the log loaded and then read through once, as the
    // replay reads it, so that streaming the log (16 bytes per operation,
    // a quarter of a cache line) is not counted as the table's misses.
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < words.size(); i += 2) sum += words[i] ^ (words[i + 1] >> kOpShift);
    std::printf("%zu operations loaded, checksum %llx\n", words.size() / 2,
                static_cast<unsigned long long>(sum));
    return 0;
  }
  heapscope::core::TraceTable table;
  std::size_t inserts = 0, erased = 0;
  for (std::size_t i = 0; i < words.size(); i += 2) {
    const std::uint64_t address = words[i], op = words[i + 1] >> kOpShift;
    if (op == kInsert) {
      const std::size_t size = words[i + 1] & ((std::uint64_t{1} << kOpShift) - 1);
      // Any traceback id will do; vary it so no table can cheat on it.
      const auto traceback = static_cast<std::uint32_t>(address >> 4) & 1023;
      insert_as_engine(table, address, size, traceback);
      ++inserts;
    } else {
      erased += table.erase(address, nullptr);
    }
  }
  std::printf("%zu operations: %zu inserts, %zu traces erased, %zu left, %zu bytes\n",
              words.size() / 2, inserts, erased, table.size(), table.memory_bytes());
  return 0;
}
