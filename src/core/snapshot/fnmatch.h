// Shell-style filename patterns with exactly the semantics of Python's
// fnmatch.fnmatchcase (on POSIX, where os.path.normcase is the identity).
//
// Python compiles a pattern to a regular expression (fnmatch.translate) and
// the details of `[...]` sets live in that translation: `[!...]` negates, a
// `]` right after `[` or `[!` is literal, `[` without a closing `]` is a
// literal `[`, `a-z` is a range, and since 3.10 reversed ranges are dropped
// (`[z-a]` matches nothing, `[!z-a]` any character) where 3.9 raises
// re.error. `Pattern` replays that translation on code points and keeps the
// resulting tokens; `*` matches any run of characters (newlines included)
// and `?` any one character. A pattern Python would reject compiles to
// `supported() == false`, and the caller lets Python raise its own error.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace heapscope::core::snapshot {

enum class FnmatchDialect {
  kPython39,   // fnmatch.translate of CPython 3.9
  kPython310,  // 3.10 to 3.13
};

class Pattern {
 public:
  Pattern() = default;
  Pattern(std::u32string_view pattern, FnmatchDialect dialect);

  bool supported() const noexcept { return supported_; }
  bool matches(std::u32string_view name) const noexcept;

 private:
  enum class Kind : std::uint8_t { kLiteral, kAny, kStar, kSet, kNever };
  struct Token {
    Kind kind;
    bool negate = false;
    char32_t ch = 0;
    std::vector<std::pair<char32_t, char32_t>> ranges;  // kSet: inclusive ranges
  };
  static bool token_matches(const Token& t, char32_t c) noexcept;
  void add_set(std::u32string_view pat, std::size_t i, std::size_t j, FnmatchDialect dialect);

  std::vector<Token> tokens_;
  bool supported_ = true;
};

// UTF-8 (surrogates allowed, as Python's "surrogatepass") to code points;
// false on malformed input.
bool decode_utf8(std::string_view utf8, std::u32string* out);

// tracemalloc's _normalize_filename on POSIX: "x.pyc" -> "x.py".
std::u32string_view normalize_filename(std::u32string_view name) noexcept;

}  // namespace heapscope::core::snapshot
