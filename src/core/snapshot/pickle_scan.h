// A bounds check of a pickle's opcodes, run before Python's C unpickler
// reads a snapshot pickle (CPython's format).
//
// The unpickler trusts sizes in the stream: a memo index (PUT, BINPUT,
// LONG_BINPUT) makes it grow its memo array to twice that index, and a
// length-prefixed bytes/str/long is allocated at its declared length before
// it is read. A few hostile bytes can thus demand gigabytes. This scan walks
// the opcodes without executing anything and rejects a memo index or a
// length beyond the size of the file, so unpickling stays proportional to
// the input. It also refuses a frame that starts inside another frame and an
// opcode that runs past its frame's end (Python's unpickler refuses both):
// there the file-reading C unpickler would execute other bytes than the
// ones scanned. Everything else (unknown opcodes, bad values, which classes
// may be named) is left to the unpickler and its restricted find_class.
#pragma once

#include <string>
#include <string_view>

namespace heapscope::core::snapshot {

// Empty when the opcodes up to STOP (or the end) stay within bounds, else
// what is wrong.
std::string pickle_bounds_problem(std::string_view pickle);

}  // namespace heapscope::core::snapshot
