#include "core/snapshot/pickle_scan.h"

#include <cstdint>

namespace heapscope::core::snapshot {

namespace {

enum class Arg {
  kNone,
  kLine,      // one newline-terminated argument
  kTwoLines,  // GLOBAL, INST
  kFixed1,
  kFixed2,
  kFixed4,
  kFixed8,
  kCounted1,  // uint8 length, then that many bytes
  kCounted4,  // uint32 length (LONG4/BININT-style int32 for BINSTRING)
  kCounted8,
  kUnknown,
};

Arg arg_of(unsigned char op) {
  switch (op) {
    case '(':
    case '.':
    case '0':
    case '1':
    case '2':
    case 'N':
    case 'R':
    case 'a':
    case 'b':
    case 'd':
    case '}':
    case 'e':
    case 'l':
    case ']':
    case 'o':
    case 's':
    case 't':
    case ')':
    case 'u':
    case 'Q':
    case 0x81:
    case 0x85:
    case 0x86:
    case 0x87:
    case 0x88:
    case 0x89:
    case 0x8f:
    case 0x90:
    case 0x91:
    case 0x92:
    case 0x93:
    case 0x94:
    case 0x97:
    case 0x98:
      return Arg::kNone;
    case 'I':
    case 'L':
    case 'F':
    case 'S':
    case 'V':
    case 'P':
    case 'g':
    case 'p':
      return Arg::kLine;
    case 'c':
    case 'i':
      return Arg::kTwoLines;
    case 'K':
    case 'h':
    case 'q':
    case 0x80:
    case 0x82:
      return Arg::kFixed1;
    case 'M':
    case 0x83:
      return Arg::kFixed2;
    case 'J':
    case 'j':
    case 'r':
    case 0x84:
      return Arg::kFixed4;
    case 'G':
    case 0x95:
      return Arg::kFixed8;
    case 0x8a:
    case 'U':
    case 0x8c:
    case 'C':
      return Arg::kCounted1;
    case 'T':
    case 'X':
    case 'B':
    case 0x8b:
      return Arg::kCounted4;
    case 0x8d:
    case 0x8e:
    case 0x96:
      return Arg::kCounted8;
    default:
      return Arg::kUnknown;
  }
}

std::uint64_t little_endian(const unsigned char* p, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= std::uint64_t{p[i]} << (8 * i);
  return v;
}

}  // namespace

std::string pickle_bounds_problem(std::string_view pickle) {
  const auto* p = reinterpret_cast<const unsigned char*>(pickle.data());
  const std::size_t n = pickle.size();
  std::size_t i = 0;
  auto line_end = [&](std::size_t from) -> std::size_t {
    for (std::size_t k = from; k < n; ++k) {
      if (p[k] == '\n') return k;
    }
    return n;
  };
  // Frames (protocol 4+) are where the file-reading C unpickler and the
  // byte stream part ways: it reads a frame from the file position, past
  // whatever the current frame still holds, and an opcode that runs over a
  // frame's end gets its argument from past that end. Then it executes
  // bytes this scan never saw as opcodes (a LONG_BINPUT hidden in a string
  // asked for a 12 GB memo). Python's own unpickler refuses both; so do we,
  // which keeps the two readings the same.
  std::size_t frame_end = 0;
  bool in_frame = false;
  while (i < n) {
    if (in_frame && i >= frame_end) in_frame = false;
    const unsigned char op = p[i++];
    const Arg arg = arg_of(op);
    std::uint64_t memo_index = 0;
    bool puts = false;
    switch (arg) {
      case Arg::kUnknown:
        return {};  // the unpickler stops here with its own error
      case Arg::kNone:
        if (op == '.') return {};
        break;
      case Arg::kLine: {
        const std::size_t end = line_end(i);
        if (end == n) return {};  // truncated: the unpickler says so
        if (op == 'p') {
          puts = true;
          // a decimal index; anything else is the unpickler's error
          for (std::size_t k = i; k < end && memo_index <= n; ++k) {
            if (p[k] < '0' || p[k] > '9') break;
            memo_index = memo_index * 10 + (p[k] - '0');
          }
        }
        i = end + 1;
        break;
      }
      case Arg::kTwoLines: {
        const std::size_t first = line_end(i);
        if (first == n) return {};
        const std::size_t second = line_end(first + 1);
        if (second == n) return {};
        i = second + 1;
        break;
      }
      case Arg::kFixed1:
      case Arg::kFixed2:
      case Arg::kFixed4:
      case Arg::kFixed8: {
        const int width = arg == Arg::kFixed1   ? 1
                          : arg == Arg::kFixed2 ? 2
                          : arg == Arg::kFixed4 ? 4
                                                : 8;
        if (n - i < static_cast<std::size_t>(width)) return {};
        const std::uint64_t value = little_endian(p + i, width);
        if (op == 'q' || op == 'r') {
          puts = true;
          memo_index = value;
        } else if (op == 0x95 && value > n - i - width) {
          return "a pickle frame is longer than the file";
        } else if (op == 0x95 && in_frame) {
          return "a pickle frame starts inside another frame";
        }
        i += width;
        if (op == 0x95) {
          frame_end = i + static_cast<std::size_t>(value);
          in_frame = true;
          continue;
        }
        break;
      }
      case Arg::kCounted1:
      case Arg::kCounted4:
      case Arg::kCounted8: {
        const int width = arg == Arg::kCounted1 ? 1 : arg == Arg::kCounted4 ? 4 : 8;
        if (n - i < static_cast<std::size_t>(width)) return {};
        const std::uint64_t length = little_endian(p + i, width);
        i += width;
        if (length > n - i) return "a pickled value is longer than the file";
        i += static_cast<std::size_t>(length);
        break;
      }
    }
    if (in_frame && i > frame_end) return "a pickle opcode runs past the end of its frame";
    if (puts && memo_index > n) return "a pickle memo index is beyond the size of the file";
  }
  return {};
}

}  // namespace heapscope::core::snapshot
