#include "core/snapshot/file_format.h"

#include <cstring>
#include <string>
#include <unordered_set>

#include "core/snapshot/analysis.h"
#include "core/snapshot/fnmatch.h"

namespace heapscope::core::snapshot {

namespace {

void put_u32(std::string* out, std::uint32_t v) {
  char b[4];
  for (int i = 0; i < 4; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 4);
}

void put_u64(std::string* out, std::uint64_t v) {
  char b[8];
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out->append(b, 8);
}

std::uint64_t get_u64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}

std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}

// LEB128: 7 bits per byte, low first; at most 10 bytes for 64 bits.
void put_varint(std::string* out, std::uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
std::int64_t unzigzag(std::uint64_t v) {
  return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

// Reads the payload; every read is bounds-checked and fails by throwing
// Corrupt with a description.
struct Corrupt {
  std::string what;
};

class Reader {
 public:
  explicit Reader(std::string_view bytes) : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  std::size_t left() const { return static_cast<std::size_t>(end_ - p_); }

  std::uint64_t varint(const char* what) {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) throw Corrupt{std::string("truncated ") + what};
      const auto b = static_cast<unsigned char>(*p_++);
      if (shift == 63 && b > 1) throw Corrupt{std::string("oversized number in ") + what};
      v |= std::uint64_t{b & 0x7Fu} << shift;
      if ((b & 0x80) == 0) return v;
    }
    throw Corrupt{std::string("oversized number in ") + what};
  }

  // A count of items each taking at least `min_bytes`: checked against the
  // bytes left before anything is allocated for them.
  std::size_t count(const char* what, std::size_t min_bytes) {
    const std::uint64_t n = varint(what);
    if (n > left() / min_bytes)
      throw Corrupt{std::string("count of ") + what + " exceeds the file"};
    return static_cast<std::size_t>(n);
  }

  std::uint32_t id(const char* what, std::size_t limit) {
    const std::uint64_t v = varint(what);
    if (v >= limit) throw Corrupt{std::string(what) + " out of range"};
    return static_cast<std::uint32_t>(v);
  }

  std::string_view bytes(std::size_t n, const char* what) {
    if (n > left()) throw Corrupt{std::string("truncated ") + what};
    std::string_view out(p_, n);
    p_ += n;
    return out;
  }

 private:
  const char* p_;
  const char* end_;
};

}  // namespace

std::uint64_t checksum(std::string_view bytes) noexcept {
  constexpr std::uint64_t kMul = 0x9E3779B97F4A7C15ull;
  std::uint64_t h = 0xC2B2AE3D27D4EB4Full ^ (bytes.size() * kMul);
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    h = (h ^ (w * kMul)) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
  }
  std::uint64_t tail = 0;
  for (std::size_t k = 0; i + k < bytes.size(); ++k) {
    tail |= std::uint64_t{static_cast<unsigned char>(bytes[i + k])} << (8 * k);
  }
  h = (h ^ (tail * kMul)) * 0xBF58476D1CE4E5B9ull;
  h ^= h >> 31;
  h *= 0x94D049BB133111EBull;
  return h ^ (h >> 32);
}

std::string encode(const Snapshot& snap, std::int64_t traceback_limit) {
  const Tables& t = *snap.tables;
  std::string payload;
  payload.reserve(snap.size() * 4 + t.traceback_frames.size() * 2 + 1024);
  if (snap.sample_interval != 0) put_varint(&payload, snap.sample_interval);
  put_varint(&payload, t.filenames.size());
  for (const std::string& name : t.filenames) {
    put_varint(&payload, name.size());
    payload.append(name);
  }
  put_varint(&payload, t.frames.size());
  for (const Frame& f : t.frames) {
    put_varint(&payload, f.filename);
    put_varint(&payload, zigzag(f.lineno));
  }
  put_varint(&payload, t.traceback_count());
  for (std::uint32_t id = 0; id < t.traceback_count(); ++id) {
    auto frames = t.traceback(id);
    put_varint(&payload, t.total_nframe[id]);
    put_varint(&payload, frames.size());
    for (std::uint32_t f : frames) put_varint(&payload, f);
  }
  const std::size_t n = snap.size();
  put_varint(&payload, n);
  // Domains as runs (value, length): nearly every block is in domain 0.
  std::string runs;
  std::size_t run_count = 0;
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i + 1;
    while (j < n && snap.domains[j] == snap.domains[i]) ++j;
    put_varint(&runs, snap.domains[i]);
    put_varint(&runs, j - i);
    ++run_count;
    i = j;
  }
  put_varint(&payload, run_count);
  payload += runs;
  // The two big columns: written straight into a buffer sized for the worst case.
  const std::size_t before = payload.size();
  payload.resize(before + n * (10 + 5));
  char* p = payload.data() + before;
  auto put = [&p](std::uint64_t v) {
    while (v >= 0x80) {
      *p++ = static_cast<char>((v & 0x7F) | 0x80);
      v >>= 7;
    }
    *p++ = static_cast<char>(v);
  };
  for (std::uint64_t s : snap.sizes) put(s);
  for (std::uint32_t tb : snap.tracebacks) put(tb);
  payload.resize(static_cast<std::size_t>(p - payload.data()));

  std::string out(kMagic, sizeof kMagic);
  put_u32(&out, kFormatVersion);
  put_u32(&out, snap.sample_interval != 0 ? kFlagSampled : 0);
  put_u64(&out, static_cast<std::uint64_t>(traceback_limit));
  put_u64(&out, payload.size());
  put_u64(&out, checksum(payload));
  out += payload;
  return out;
}

std::string decode(std::string_view bytes, Decoded* out) {
  if (bytes.empty()) return "the file is empty";
  if (bytes.size() < sizeof kMagic || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    return "not a heapscope snapshot file (bad magic)";
  }
  if (bytes.size() < kHeaderSize) return "truncated header";
  const std::uint32_t version = get_u32(bytes.data() + 8);
  if (version > kFormatVersion) {
    return "snapshot file format version " + std::to_string(version) +
           " is newer than this heapscope reads (" + std::to_string(kFormatVersion) + ")";
  }
  if (version == 0) return "invalid snapshot file format version 0";
  const std::uint32_t flags = get_u32(bytes.data() + 12);
  if ((flags & ~kFlagSampled) != 0) return "unknown flags in the header";
  const auto traceback_limit = static_cast<std::int64_t>(get_u64(bytes.data() + 16));
  const std::uint64_t payload_size = get_u64(bytes.data() + 24);
  const std::uint64_t expected_sum = get_u64(bytes.data() + 32);
  const std::string_view payload = bytes.substr(kHeaderSize);
  if (payload.size() < payload_size) {
    return "truncated: the header announces " + std::to_string(payload_size) +
           " bytes of data, the file has " + std::to_string(payload.size());
  }
  if (payload.size() > payload_size) return "trailing bytes after the snapshot data";
  if (checksum(payload) != expected_sum) return "checksum mismatch: the file is corrupted";

  try {
    Reader r(payload);
    std::uint64_t sample_interval = 0;
    if (flags & kFlagSampled) {
      sample_interval = r.varint("sampling interval");
      if (sample_interval == 0) throw Corrupt{"a sampled snapshot with a sampling interval of 0"};
    }
    auto tables = std::make_shared<Tables>();
    const std::size_t nfiles = r.count("filenames", 1);
    tables->filenames.reserve(nfiles);
    std::unordered_set<std::string_view> names;
    std::u32string scratch;
    for (std::size_t i = 0; i < nfiles; ++i) {
      const std::string_view name = r.bytes(r.count("filename bytes", 1), "filename");
      if (!decode_utf8(name, &scratch)) throw Corrupt{"a filename is not valid UTF-8"};
      if (!names.insert(name).second) throw Corrupt{"duplicate filename"};
      tables->filenames.emplace_back(name);
    }
    const std::size_t nframes = r.count("frames", 2);
    tables->frames.reserve(nframes);
    std::unordered_set<std::uint64_t> seen_frames;  // checked pairwise below
    struct PairHash {
      std::size_t operator()(const std::pair<std::uint32_t, std::int64_t>& p) const noexcept {
        return std::hash<std::uint64_t>()(p.first * 0x9E3779B97F4A7C15ull ^
                                          static_cast<std::uint64_t>(p.second));
      }
    };
    std::unordered_set<std::pair<std::uint32_t, std::int64_t>, PairHash> frames_seen;
    for (std::size_t i = 0; i < nframes; ++i) {
      const std::uint32_t file = r.id("frame filename id", nfiles);
      const std::int64_t lineno = unzigzag(r.varint("frame line"));
      if (!frames_seen.insert({file, lineno}).second) throw Corrupt{"duplicate frame"};
      tables->frames.push_back(Frame{file, lineno});
    }
    const std::size_t ntb = r.count("tracebacks", 2);
    tables->total_nframe.reserve(ntb);
    tables->traceback_offsets.reserve(ntb + 1);
    for (std::size_t i = 0; i < ntb; ++i) {
      tables->total_nframe.push_back(r.varint("traceback total_nframe"));
      const std::size_t depth = r.count("traceback frames", 1);
      if (depth == 0) throw Corrupt{"empty traceback"};
      for (std::size_t k = 0; k < depth; ++k)
        tables->traceback_frames.push_back(r.id("traceback frame id", nframes));
      tables->traceback_offsets.push_back(tables->traceback_frames.size());
    }
    Snapshot snap;
    snap.sample_interval = sample_interval;
    const std::size_t n = r.count("traces", 2);
    snap.domains.reserve(n);
    const std::size_t nruns = r.count("domain runs", 2);
    for (std::size_t i = 0; i < nruns; ++i) {
      const std::uint64_t domain = r.varint("domain");
      if (domain > UINT32_MAX) throw Corrupt{"domain out of range"};
      const std::uint64_t length = r.varint("domain run");
      if (length == 0 || length > n - snap.domains.size())
        throw Corrupt{"domain runs do not add up to the traces"};
      snap.domains.insert(snap.domains.end(), length, static_cast<std::uint32_t>(domain));
    }
    if (snap.domains.size() != n) throw Corrupt{"domain runs do not add up to the traces"};
    snap.sizes.resize(n);
    for (std::size_t i = 0; i < n; ++i) snap.sizes[i] = r.varint("trace size");
    snap.tracebacks.resize(n);
    for (std::size_t i = 0; i < n; ++i) snap.tracebacks[i] = r.id("trace traceback id", ntb);
    if (r.left() != 0) throw Corrupt{"unexpected bytes after the traces"};
    snap.tables = std::move(tables);
    if (std::string problem = snap.tables->validate(); !problem.empty()) throw Corrupt{problem};
    if (std::string problem = snap.validate(); !problem.empty()) throw Corrupt{problem};
    // A file that loads must never fail later in statistics or compare_to.
    if (std::string problem = sampled_estimates_problem(snap); !problem.empty())
      throw Corrupt{problem};
    out->snapshot = std::move(snap);
    out->traceback_limit = traceback_limit;
    return {};
  } catch (const Corrupt& c) {
    return "corrupt snapshot file: " + c.what;
  } catch (const std::bad_alloc&) {
    return "corrupt snapshot file: tables too large to load";
  }
}

}  // namespace heapscope::core::snapshot
