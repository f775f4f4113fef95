#include "core/snapshot/fnmatch.h"

namespace heapscope::core::snapshot {

namespace {

// One character of the regular expression set body fnmatch.translate
// writes between `[` and `]`: a code point, and whether it was escaped (an
// escaped character is always literal; an unescaped '-' makes a range).
struct Atom {
  char32_t ch;
  bool escaped;
};

struct Unsupported {};

void append_chunk(std::vector<Atom>* body, std::u32string_view chunk, bool escape_hyphen) {
  for (char32_t c : chunk) body->push_back(Atom{c, c == U'\\' || (escape_hyphen && c == U'-')});
}

}  // namespace

Pattern::Pattern(std::u32string_view pat, FnmatchDialect dialect) {
  try {
    const std::size_t n = pat.size();
    std::size_t i = 0;
    while (i < n) {
      const char32_t c = pat[i++];
      if (c == U'*') {
        if (tokens_.empty() || tokens_.back().kind != Kind::kStar) tokens_.push_back(Token{Kind::kStar});
      } else if (c == U'?') {
        tokens_.push_back(Token{Kind::kAny});
      } else if (c == U'[') {
        std::size_t j = i;
        if (j < n && pat[j] == U'!') ++j;
        if (j < n && pat[j] == U']') ++j;
        while (j < n && pat[j] != U']') ++j;
        if (j >= n) {
          tokens_.push_back(Token{Kind::kLiteral, false, U'['});
        } else {
          add_set(pat, i, j, dialect);
          i = j + 1;
        }
      } else {
        tokens_.push_back(Token{Kind::kLiteral, false, c});
      }
    }
  } catch (const Unsupported&) {
    supported_ = false;
    tokens_.clear();
  }
}

// Replays fnmatch.translate for the set pat[i:j] (j at the closing ']'),
// then parses the set body the way Python's regular expression parser does.
void Pattern::add_set(std::u32string_view pat, std::size_t i, std::size_t j, FnmatchDialect dialect) {
  const std::u32string_view stuff = pat.substr(i, j - i);
  const bool modern = dialect == FnmatchDialect::kPython310;
  std::vector<Atom> body;
  const bool simple = modern ? stuff.find(U'-') == std::u32string_view::npos
                             : stuff.find(U"--") == std::u32string_view::npos;
  if (simple) {
    append_chunk(&body, stuff, false);
  } else {
    std::vector<std::u32string> chunks;
    std::size_t k = pat[i] == U'!' ? i + 2 : i + 1;
    while (true) {
      k = k < j ? pat.substr(0, j).find(U'-', k) : std::u32string_view::npos;
      if (k == std::u32string_view::npos) break;
      chunks.emplace_back(pat.substr(i, k - i));
      i = k + 1;
      k = k + 3;
    }
    const std::u32string_view last = pat.substr(i, j - i);
    if (!modern) {
      chunks.emplace_back(last);
    } else {
      if (!last.empty()) {
        chunks.emplace_back(last);
      } else {
        if (chunks.empty()) throw Unsupported{};
        chunks.back() += U'-';
      }
      // Reversed ranges are removed, merging their neighbours.
      for (std::size_t m = chunks.size() - 1; m > 0; --m) {
        if (chunks[m - 1].empty() || chunks[m].empty()) throw Unsupported{};  // IndexError in Python
        if (chunks[m - 1].back() > chunks[m].front()) {
          chunks[m - 1] = chunks[m - 1].substr(0, chunks[m - 1].size() - 1) + chunks[m].substr(1);
          chunks.erase(chunks.begin() + static_cast<std::ptrdiff_t>(m));
        }
      }
    }
    for (std::size_t m = 0; m < chunks.size(); ++m) {
      if (m > 0) body.push_back(Atom{U'-', false});
      append_chunk(&body, chunks[m], true);
    }
  }

  Token token{Kind::kSet};
  if (modern && body.empty()) {
    tokens_.push_back(Token{Kind::kNever});
    return;
  }
  if (modern && body.size() == 1 && body[0].ch == U'!' && !body[0].escaped) {
    tokens_.push_back(Token{Kind::kAny});
    return;
  }
  if (body.empty()) throw Unsupported{};  // stuff[0] on an empty string
  std::size_t p = 0;
  if (body[0].ch == U'!' && !body[0].escaped) {
    token.negate = true;
    p = 1;
  } else if (body[0].ch == U'^' || body[0].ch == U'[') {
    body[0].escaped = true;
  }
  // The regular expression parser's set loop, over body + the closing ']'.
  body.push_back(Atom{U']', false});
  const std::size_t start = p;
  while (true) {
    if (p >= body.size()) throw Unsupported{};
    const Atom first = body[p++];
    if (first.ch == U']' && !first.escaped && p - 1 != start) break;
    if (p < body.size() && body[p].ch == U'-' && !body[p].escaped) {
      ++p;
      if (p >= body.size()) throw Unsupported{};
      const Atom second = body[p++];
      if (second.ch == U']' && !second.escaped) {
        token.ranges.emplace_back(first.ch, first.ch);
        token.ranges.emplace_back(U'-', U'-');
        break;
      }
      if (second.ch < first.ch) throw Unsupported{};  // re.error: bad character range
      token.ranges.emplace_back(first.ch, second.ch);
    } else {
      token.ranges.emplace_back(first.ch, first.ch);
    }
  }
  tokens_.push_back(std::move(token));
}

bool Pattern::token_matches(const Token& t, char32_t c) noexcept {
  switch (t.kind) {
    case Kind::kLiteral:
      return t.ch == c;
    case Kind::kAny:
      return true;
    case Kind::kNever:
    case Kind::kStar:
      return false;
    case Kind::kSet:
      for (const auto& [lo, hi] : t.ranges) {
        if (lo <= c && c <= hi) return !t.negate;
      }
      return t.negate;
  }
  return false;
}

// Every token but `*` consumes exactly one character, so the classic
// backtrack-to-the-last-star algorithm is exact (and linear in practice).
bool Pattern::matches(std::u32string_view s) const noexcept {
  const std::size_t nt = tokens_.size();
  std::size_t ti = 0, si = 0;
  std::size_t star_ti = SIZE_MAX, star_si = 0;
  while (si < s.size()) {
    if (ti < nt && tokens_[ti].kind == Kind::kStar) {
      star_ti = ti++;
      star_si = si;
    } else if (ti < nt && token_matches(tokens_[ti], s[si])) {
      ++ti;
      ++si;
    } else if (star_ti != SIZE_MAX) {
      ti = star_ti + 1;
      si = ++star_si;
    } else {
      return false;
    }
  }
  while (ti < nt && tokens_[ti].kind == Kind::kStar) ++ti;
  return ti == nt;
}

bool decode_utf8(std::string_view utf8, std::u32string* out) {
  out->clear();
  out->reserve(utf8.size());
  const auto* s = reinterpret_cast<const unsigned char*>(utf8.data());
  const std::size_t n = utf8.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned char b = s[i];
    if (b < 0x80) {
      out->push_back(b);
      ++i;
      continue;
    }
    std::size_t len;
    char32_t cp;
    char32_t min;
    if ((b & 0xE0) == 0xC0) {
      len = 2, cp = b & 0x1F, min = 0x80;
    } else if ((b & 0xF0) == 0xE0) {
      len = 3, cp = b & 0x0F, min = 0x800;
    } else if ((b & 0xF8) == 0xF0) {
      len = 4, cp = b & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF) return false;
    out->push_back(cp);
    i += len;
  }
  return true;
}

std::u32string_view normalize_filename(std::u32string_view name) noexcept {
  if (name.size() >= 4 && name.substr(name.size() - 4) == U".pyc") return name.substr(0, name.size() - 1);
  return name;
}

}  // namespace heapscope::core::snapshot
