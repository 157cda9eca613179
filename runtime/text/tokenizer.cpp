// Byte-level BPE tokenizer; see tokenizer.hpp for what is supported and why.
//
// Pipeline of encode(), in the order Hugging Face tokenizers applies it:
//   1. split out added tokens whose `normalized` flag is false, on the raw text;
//   2. normalize (NFC) each remaining segment;
//   3. split out added tokens whose `normalized` flag is true;
//   4. pre-tokenize: the Split regex cuts the text into words ("Isolated": both
//      the matches and any gaps between them become words);
//   5. ByteLevel: each word is taken as bytes (the GPT-2 byte->char alphabet is
//      only a spelling; we convert the vocabulary to raw bytes once at load);
//   6. BPE merges each word's bytes by rank, lowest first, leftmost on ties.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "runtime/text/tokenizer.hpp"
#include "runtime/text/utf8.hpp"

#include <fmt/format.h>
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

namespace quanteval::runtime {

namespace {

using json = nlohmann::json;

// ---------------------------------------------------------------------------
// The GPT-2 byte-level alphabet: printable Latin-1 bytes spell themselves, the
// other 68 bytes are mapped, in order, to U+0100.. so every byte has a visible
// character (space is "Ġ" = U+0120, newline "Ċ" = U+010A).
struct ByteLevelAlphabet {
  std::array<char32_t, 256> byte_to_char{};
  std::array<std::int16_t, 324> char_to_byte{};  // -1: not a byte-level character
};

constexpr bool spells_itself(int byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE && byte <= 0xFF);
}

constexpr ByteLevelAlphabet make_byte_level_alphabet() {
  ByteLevelAlphabet alphabet;
  for (auto& entry : alphabet.char_to_byte) entry = -1;
  int next_remapped = 256;
  for (int byte = 0; byte < 256; ++byte) {
    const int code_point = spells_itself(byte) ? byte : next_remapped++;
    alphabet.byte_to_char[byte] = static_cast<char32_t>(code_point);
    alphabet.char_to_byte[code_point] = static_cast<std::int16_t>(byte);
  }
  return alphabet;
}

constexpr ByteLevelAlphabet kByteLevel = make_byte_level_alphabet();

// ---------------------------------------------------------------------------
// Small UTF-8 helpers for text already known to be valid.
int sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// Decodes the code point at `position` and advances past it (valid input only).
char32_t next_code_point(std::string_view text, std::size_t& position) {
  const auto lead = static_cast<unsigned char>(text[position]);
  const int length = sequence_length(lead);
  char32_t code_point = length == 1 ? lead : lead & (0x7F >> length);
  for (int i = 1; i < length; ++i)
    code_point = (code_point << 6) | (static_cast<unsigned char>(text[position + i]) & 0x3F);
  position += length;
  return code_point;
}

// The code point that ends just before `end` (valid input only).
char32_t previous_code_point(std::string_view text, std::size_t end, std::size_t& start) {
  start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  std::size_t position = start;
  return next_code_point(text, position);
}

bool is_valid_utf8(std::string_view text) {
  std::string scratch;
  // append_utf8_lossy replaces exactly the invalid parts, so equal length and
  // no inserted U+FFFD means valid; checking the ASCII prefix first keeps the
  // common case free of copies.
  std::size_t ascii_prefix = 0;
  while (ascii_prefix < text.size() && static_cast<unsigned char>(text[ascii_prefix]) < 0x80) ++ascii_prefix;
  if (ascii_prefix == text.size()) return true;
  const std::string_view rest = text.substr(ascii_prefix);
  scratch.reserve(rest.size());
  append_utf8_lossy(rest, scratch, /*final=*/true);
  return scratch == rest;
}

bool is_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// Unicode White_Space, as Rust's char::is_whitespace (used by lstrip/rstrip).
bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Letters, numbers and '_' (tokenizers' notion of a word character for single_word).
bool is_word_character(char32_t c) {
  if (c == '_') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO: return true;
    default: return false;
  }
}

// Byte-level spelling ("Ġhello") -> raw bytes (" hello"), replacing `bytes`;
// false when a character is outside the alphabet.
bool byte_level_to_bytes(std::string_view spelling, std::string& bytes) {
  bytes.clear();
  std::size_t position = 0;
  while (position < spelling.size()) {
    const char32_t c = next_code_point(spelling, position);
    if (c >= kByteLevel.char_to_byte.size() || kByteLevel.char_to_byte[c] < 0) return false;
    bytes.push_back(static_cast<char>(kByteLevel.char_to_byte[c]));
  }
  return true;
}

std::optional<std::string> byte_level_to_bytes(std::string_view spelling) {
  std::string bytes;
  if (!byte_level_to_bytes(spelling, bytes)) return std::nullopt;
  return bytes;
}

std::string bytes_to_byte_level(std::string_view bytes) {
  std::string spelling;
  spelling.reserve(bytes.size() * 2);
  for (unsigned char byte : bytes) append_code_point(spelling, kByteLevel.byte_to_char[byte]);
  return spelling;
}

// ---------------------------------------------------------------------------
// Error helpers: every message names the source file and the JSON field.
[[noreturn]] void fail(const std::string& source, std::string_view field, std::string_view message) {
  throw TokenizerError(fmt::format("{}: {}: {}", source, field, message));
}

const json& require(const json& object, const char* key, const std::string& source, std::string_view parent) {
  if (!object.is_object()) fail(source, parent, "expected an object");
  auto it = object.find(key);
  if (it == object.end()) fail(source, fmt::format("{}.{}", parent, key), "missing");
  return *it;
}

std::string require_string(const json& value, const std::string& source, std::string_view field) {
  if (!value.is_string()) fail(source, field, fmt::format("expected a string, found {}", value.type_name()));
  return value.get<std::string>();
}

bool optional_bool(const json& object, const char* key, bool fallback, const std::string& source,
                   std::string_view parent) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) fail(source, fmt::format("{}.{}", parent, key), "expected true or false");
  return it->get<bool>();
}

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw TokenizerError(fmt::format("{}: cannot open file", file.string()));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw TokenizerError(fmt::format("{}: read error", file.string()));
  return std::move(buffer).str();
}

json parse_json(std::string_view text, const std::string& source) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& error) {
    throw TokenizerError(fmt::format("{}: invalid JSON: {}", source, error.what()));
  }
}

// ---------------------------------------------------------------------------
// tokenizers compiles Split patterns with Oniguruma; we use PCRE2. Their
// Unicode \s differ: Oniguruma's is exactly U+0009..U+000D, U+0085 and the Z
// categories (Zs, Zl, Zp), while PCRE2's also matches U+180E MONGOLIAN VOWEL
// SEPARATOR (kept from its old \h list; checked over all code points with
// PCRE2 10.42). So \s and \S are spelled out as Oniguruma defines them. Inside
// a character class only \s can be spelled out; a \S there is refused rather
// than silently differing.
constexpr std::string_view kOnigSpaceSet = "\\t-\\r\\x{85}\\p{Z}";

std::string onig_to_pcre2(std::string_view pattern, const std::string& source, std::string_view field) {
  std::string out;
  out.reserve(pattern.size() + 32);
  bool in_class = false;
  std::size_t class_start = 0;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char escaped = pattern[i + 1];
      ++i;
      if (escaped == 's') {
        if (in_class) {
          out += kOnigSpaceSet;
        } else {
          out += '[';
          out += kOnigSpaceSet;
          out += ']';
        }
      } else if (escaped == 'S') {
        if (in_class) fail(source, field, "\\S inside a character class is not supported");
        out += "[^";
        out += kOnigSpaceSet;
        out += ']';
      } else {
        out += '\\';
        out += escaped;
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      class_start = out.size();
    } else if (in_class && c == ']') {
      // A ']' right after '[' or '[^' is a literal, not the end of the class.
      const std::string_view so_far = std::string_view(out).substr(class_start);
      if (so_far != "[" && so_far != "[^") in_class = false;
    } else if (in_class && c == '[') {
      fail(source, field, "nested character classes are not supported");
    }
    out += c;
  }
  return out;
}

class SplitRegex {
 public:
  SplitRegex(std::string_view pattern, bool is_literal, const std::string& source, std::string_view field) {
    const std::string translated = is_literal ? std::string(pattern) : onig_to_pcre2(pattern, source, field);
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    const uint32_t options = PCRE2_UTF | PCRE2_UCP | (is_literal ? PCRE2_LITERAL : 0);
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(), options, &error_code,
                          &error_offset, nullptr);
    if (code_ == nullptr) {
      std::array<PCRE2_UCHAR, 256> message{};
      pcre2_get_error_message(error_code, message.data(), message.size());
      fail(source, field,
           fmt::format("pattern does not compile at offset {}: {}", error_offset,
                       reinterpret_cast<const char*>(message.data())));
    }
    // JIT is an optimization only; without it (unsupported CPU, SELinux) the
    // interpreter gives the same matches.
    jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
  }
  SplitRegex(const SplitRegex&) = delete;
  SplitRegex& operator=(const SplitRegex&) = delete;
  ~SplitRegex() { pcre2_code_free(code_); }

  bool uses_jit() const { return jit_; }

  // Isolated split of valid UTF-8 `text`: every match and every gap between
  // matches becomes a piece, in order.
  void split(std::string_view text, std::vector<std::string_view>& pieces) const {
    using MatchData = std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)>;
    MatchData match_data(pcre2_match_data_create_from_pattern(code_, nullptr), &pcre2_match_data_free);
    if (!match_data) throw TokenizerError("tokenizer: out of memory creating PCRE2 match data");
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    std::size_t offset = 0;
    std::size_t gap_start = 0;
    while (offset <= text.size()) {
      // The text was validated once by the caller; letting PCRE2 re-check it
      // on every call would make splitting quadratic.
      const int result =
          jit_ ? pcre2_jit_match(code_, subject, text.size(), offset, 0, match_data.get(), nullptr)
               : pcre2_match(code_, subject, text.size(), offset, PCRE2_NO_UTF_CHECK, match_data.get(), nullptr);
      if (result == PCRE2_ERROR_NOMATCH) break;
      if (result < 0) {
        std::array<PCRE2_UCHAR, 256> message{};
        pcre2_get_error_message(result, message.data(), message.size());
        throw TokenizerError(
            fmt::format("tokenizer: pre-tokenizer regex failed: {}", reinterpret_cast<const char*>(message.data())));
      }
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match_data.get());
      const std::size_t match_start = ovector[0];
      const std::size_t match_end = ovector[1];
      if (match_start > gap_start) pieces.push_back(text.substr(gap_start, match_start - gap_start));
      if (match_end > match_start) {
        pieces.push_back(text.substr(match_start, match_end - match_start));
        offset = match_end;
        gap_start = match_end;
      } else {
        // An empty match cuts nothing; step over one character so the search advances.
        if (match_end >= text.size()) break;
        offset = match_end + sequence_length(static_cast<unsigned char>(text[match_end]));
      }
    }
    if (gap_start < text.size()) pieces.push_back(text.substr(gap_start));
  }

 private:
  pcre2_code* code_ = nullptr;
  bool jit_ = false;
};

// ---------------------------------------------------------------------------
// (left id, right id) -> (rank, merged id), open addressing. BPE does one
// lookup per adjacent pair, so this table is the hot path of encoding.
class MergeTable {
 public:
  struct Merge {
    std::uint32_t rank = 0;
    TokenId merged_id = 0;
  };

  void reserve(std::size_t merges) {
    std::size_t capacity = 16;
    while (capacity < merges * 2) capacity *= 2;
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
  }

  // A pair listed twice keeps its later rank, as tokenizers' HashMap collect does.
  void insert(TokenId left, TokenId right, Merge merge) {
    const std::uint64_t key = make_key(left, right);
    for (std::size_t slot = hash(key);; slot = (slot + 1) & mask_) {
      if (slots_[slot].key == kEmpty || slots_[slot].key == key) {
        slots_[slot] = Slot{key, merge};
        return;
      }
    }
  }

  const Merge* find(TokenId left, TokenId right) const {
    const std::uint64_t key = make_key(left, right);
    for (std::size_t slot = hash(key);; slot = (slot + 1) & mask_) {
      if (slots_[slot].key == key) return &slots_[slot].merge;
      if (slots_[slot].key == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr std::uint64_t kEmpty = std::numeric_limits<std::uint64_t>::max();
  struct Slot {
    std::uint64_t key = kEmpty;
    Merge merge;
  };
  static std::uint64_t make_key(TokenId left, TokenId right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) | static_cast<std::uint32_t>(right);
  }
  std::size_t hash(std::uint64_t key) const {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ULL) >> 20) & mask_;
  }
  std::vector<Slot> slots_;
  std::size_t mask_ = 0;
};

// Heterogeneous lookup so string_views can probe maps keyed by std::string.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};
using StringToId = std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>>;

// Finds added tokens in text: leftmost match first, the longest at that
// position (tokenizers uses Aho-Corasick with LeftmostLongest), matches do not
// overlap. A match rejected by single_word still consumes its span, as in
// tokenizers, where the automaton's iterator has already moved past it.
class AddedTokenMatcher {
 public:
  void add(const AddedToken& token) {
    if (token.content.empty()) return;
    auto& candidates = by_first_byte_[static_cast<unsigned char>(token.content[0])];
    candidates.push_back(&token);
    std::stable_sort(candidates.begin(), candidates.end(),
                     [](const AddedToken* a, const AddedToken* b) { return a->content.size() > b->content.size(); });
    empty_ = false;
  }
  bool empty() const { return empty_; }

  struct Segment {
    std::string_view text;  // when token is null
    const AddedToken* token = nullptr;
  };

  void split(std::string_view text, bool skip_special, std::vector<Segment>& segments) const {
    if (empty_) {
      if (!text.empty()) segments.push_back({text, nullptr});
      return;
    }
    std::size_t segment_start = 0;  // end of the previous accepted match
    std::size_t position = 0;
    while (position < text.size()) {
      const AddedToken* found = nullptr;
      for (const AddedToken* candidate : by_first_byte_[static_cast<unsigned char>(text[position])]) {
        if (text.compare(position, candidate->content.size(), candidate->content) == 0) {
          found = candidate;
          break;
        }
      }
      if (found == nullptr) {
        ++position;
        continue;
      }
      std::size_t start = position;
      std::size_t stop = position + found->content.size();
      position = stop;
      if (skip_special && found->special) continue;
      if (found->single_word) {
        std::size_t ignored = 0;
        const bool word_before = start > 0 && is_word_character(previous_code_point(text, start, ignored));
        std::size_t after = stop;
        const bool word_after = stop < text.size() && is_word_character(next_code_point(text, after));
        if (word_before || word_after) continue;
      }
      if (found->lstrip) {
        std::size_t new_start = start;
        while (new_start > segment_start) {
          std::size_t char_start = 0;
          if (!is_white_space(previous_code_point(text, new_start, char_start))) break;
          new_start = char_start;
        }
        start = new_start;
      }
      if (found->rstrip) {
        while (stop < text.size()) {
          std::size_t next = stop;
          if (!is_white_space(next_code_point(text, next))) break;
          stop = next;
        }
        position = stop;
      }
      if (start > segment_start) segments.push_back({text.substr(segment_start, start - segment_start), nullptr});
      segments.push_back({{}, found});
      segment_start = stop;
    }
    if (segment_start < text.size()) segments.push_back({text.substr(segment_start), nullptr});
  }

 private:
  std::array<std::vector<const AddedToken*>, 256> by_first_byte_;
  bool empty_ = true;
};

// Reusable buffers for one BPE run (kept per encode call, so no sharing).
struct BpeScratch {
  struct Symbol {
    TokenId id;
    std::int32_t previous;  // index of the previous live symbol, -1 at the start
    std::int32_t next;      // index of the next live symbol, -1 at the end
    std::uint32_t length;   // bytes covered; 0 once merged into its left neighbour
  };
  struct Candidate {
    std::uint32_t rank;
    std::uint32_t position;  // index of the left symbol
    TokenId merged_id;
    // std::*_heap keeps the largest on top; we want lowest rank, then leftmost.
    bool operator<(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : position > other.position;
    }
  };
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
  // for the scanning variant
  std::vector<TokenId> ids;
  std::vector<std::uint32_t> pair_ranks;  // rank of (ids[i], ids[i+1]); kNoMerge when none
  std::vector<TokenId> pair_merged_ids;
};

constexpr std::uint32_t kNoMerge = std::numeric_limits<std::uint32_t>::max();

// Up to this length the scanning BPE beats the priority queue (measured with
// tools/bench_tokenizer: it wins on HumanEval words and on 110-byte minified
// solutions, its erase() being a short memmove); longer
// words, such as long whitespace or repeated-character runs, use the queue.
constexpr std::size_t kScanningBpeMaxBytes = 256;

enum class IdKind : std::uint8_t { unused, model, added, added_special };

// Model token bytes -> id, open addressing over ids; the bytes themselves live
// in the tokenizer's id_bytes table, so the 150k-entry index stores 4 bytes
// per slot instead of a node and a string copy per token.
class BytesToIdIndex {
 public:
  // Returns the id already holding these bytes, or -1 after inserting.
  TokenId insert(TokenId id, const std::vector<std::string>& id_bytes) {
    if ((count_ + 1) * 2 > slots_.size()) grow(id_bytes);
    const std::string_view bytes = id_bytes[id];
    for (std::size_t slot = hash(bytes);; slot = (slot + 1) & mask_) {
      if (slots_[slot] < 0) {
        slots_[slot] = id;
        ++count_;
        return -1;
      }
      if (id_bytes[slots_[slot]] == bytes) return slots_[slot];
    }
  }

  TokenId find(std::string_view bytes, const std::vector<std::string>& id_bytes) const {
    if (slots_.empty()) return -1;
    for (std::size_t slot = hash(bytes);; slot = (slot + 1) & mask_) {
      if (slots_[slot] < 0) return -1;
      if (id_bytes[slots_[slot]] == bytes) return slots_[slot];
    }
  }

 private:
  std::size_t hash(std::string_view bytes) const { return std::hash<std::string_view>{}(bytes)&mask_; }
  void grow(const std::vector<std::string>& id_bytes) {
    std::vector<TokenId> old = std::move(slots_);
    slots_.assign(std::max<std::size_t>(64, old.size() * 2), -1);
    mask_ = slots_.size() - 1;
    count_ = 0;
    for (TokenId id : old)
      if (id >= 0) insert(id, id_bytes);
  }
  std::vector<TokenId> slots_;
  std::size_t mask_ = 0;
  std::size_t count_ = 0;
};

// Reads tokenizer.json with nlohmann's SAX interface. model.vocab and
// model.merges (about 300k small entries, 95% of the file) are converted to
// raw bytes as they stream by; everything else becomes an ordinary json value.
// Skipping the DOM for the two big tables halves the load time.
class TokenizerJsonReader final : public nlohmann::json_sax<json> {
 public:
  struct VocabEntry {
    std::string bytes;  // short tokens fit std::string's inline buffer
    std::int64_t id = -1;
  };
  struct MergeEntry {
    std::string left, right;  // raw bytes
  };

  explicit TokenizerJsonReader(const std::string& source) : source_(source) {}

  json root;
  bool saw_vocab = false;   // model.vocab was an object (streamed into `vocab`)
  bool saw_merges = false;  // model.merges was an array (streamed into `merges`)
  std::vector<VocabEntry> vocab;
  std::vector<MergeEntry> merges;

  bool null() override { return in_table("null") || add_value(json()); }
  bool boolean(bool value) override { return in_table("a boolean") || add_value(json(value)); }
  bool number_integer(number_integer_t value) override {
    if (mode_ == Mode::vocab) return set_vocab_id(value);
    return in_table("a number") || add_value(json(value));
  }
  bool number_unsigned(number_unsigned_t value) override {
    if (mode_ == Mode::vocab)
      return set_vocab_id(value > static_cast<number_unsigned_t>(std::numeric_limits<std::int64_t>::max())
                              ? -1
                              : static_cast<std::int64_t>(value));
    return in_table("a number") || add_value(json(value));
  }
  bool number_float(number_float_t value, const string_t&) override {
    return in_table("a number") || add_value(json(value));
  }
  bool string(string_t& value) override {
    if (mode_ == Mode::merges) return add_merge_text(value);
    return in_table("a string") || add_value(json(std::move(value)));
  }
  bool binary(binary_t&) override { return in_table("binary") || add_value(json()); }
  bool key(string_t& value) override {
    if (mode_ == Mode::vocab) {
      auto& entry = vocab.emplace_back();
      if (!byte_level_to_bytes(value, entry.bytes))
        fail(source_, fmt::format("model.vocab[\"{}\"]", value),
             "token is not spelled in the byte-level alphabet (only byte-level BPE is supported)");
      return true;
    }
    pending_key_ = std::move(value);
    return true;
  }
  bool start_object(std::size_t) override {
    if (mode_ != Mode::dom) return in_table("an object");
    if (at_model_field("vocab")) {
      mode_ = Mode::vocab;
      saw_vocab = true;
      vocab.reserve(160000);
      return true;
    }
    return open(json::object());
  }
  bool end_object() override {
    if (mode_ == Mode::vocab) {
      mode_ = Mode::dom;
      return true;
    }
    return close();
  }
  bool start_array(std::size_t) override {
    if (mode_ == Mode::merges) {
      if (in_merge_pair_) fail(source_, fmt::format("model.merges[{}]", merges.size()), "expected [\"a\", \"b\"]");
      in_merge_pair_ = true;
      merge_parts_.clear();
      return true;
    }
    if (mode_ == Mode::vocab) return in_table("an array");
    if (at_model_field("merges")) {
      mode_ = Mode::merges;
      saw_merges = true;
      merges.reserve(160000);
      return true;
    }
    return open(json::array());
  }
  bool end_array() override {
    if (mode_ == Mode::merges) {
      if (!in_merge_pair_) {
        mode_ = Mode::dom;
        return true;
      }
      in_merge_pair_ = false;
      if (merge_parts_.size() != 2)
        fail(source_, fmt::format("model.merges[{}]", merges.size()), "expected [\"a\", \"b\"]");
      return add_merge(merge_parts_[0], merge_parts_[1]);
    }
    return close();
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& error) override {
    throw TokenizerError(fmt::format("{}: invalid JSON near byte {}: {}", source_, position, error.what()));
  }

 private:
  enum class Mode { dom, vocab, merges };

  // Values other than the expected ones inside the streamed tables are errors.
  bool in_table(std::string_view found) {
    if (mode_ == Mode::vocab) fail(source_, "model.vocab", fmt::format("expected integer ids, found {}", found));
    if (mode_ == Mode::merges)
      fail(source_, fmt::format("model.merges[{}]", merges.size()),
           fmt::format("expected \"a b\" or [\"a\", \"b\"], found {}", found));
    return false;  // not in a table: the caller adds the value to the DOM
  }

  bool set_vocab_id(std::int64_t id) {
    if (vocab.empty() || vocab.back().id != -1 || id < 0 || id > std::numeric_limits<TokenId>::max())
      fail(source_, "model.vocab", fmt::format("id {} is not a valid token id", id));
    vocab.back().id = id;
    return true;
  }

  bool add_merge_text(const std::string& text) {
    if (in_merge_pair_) {
      merge_parts_.push_back(text);
      return true;
    }
    // The older format: one string "left right".
    const auto space = text.find(' ');
    if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos)
      fail(source_, fmt::format("model.merges[{}]", merges.size()), fmt::format("'{}' is not two tokens", text));
    return add_merge(std::string_view(text).substr(0, space), std::string_view(text).substr(space + 1));
  }

  bool add_merge(std::string_view left, std::string_view right) {
    auto& entry = merges.emplace_back();
    for (auto [spelling, bytes] : {std::pair{left, &entry.left}, std::pair{right, &entry.right}}) {
      if (!byte_level_to_bytes(spelling, *bytes))
        fail(source_, fmt::format("model.merges[{}]", merges.size() - 1),
             fmt::format("token '{}' is not in model.vocab", spelling));
    }
    return true;
  }

  bool at_model_field(std::string_view name) const {
    return stack_.size() == 2 && keys_[1] == "model" && stack_[0]->is_object() && pending_key_ == name;
  }

  json* insert(json&& value) {
    if (stack_.empty()) {
      root = std::move(value);
      return &root;
    }
    json& container = *stack_.back();
    if (container.is_array()) {
      container.push_back(std::move(value));
      return &container.back();
    }
    json& slot = container[pending_key_];
    slot = std::move(value);
    return &slot;
  }
  bool add_value(json&& value) {
    insert(std::move(value));
    return true;
  }
  bool open(json&& container) {
    const bool parent_is_object = !stack_.empty() && stack_.back()->is_object();
    std::string key = parent_is_object ? pending_key_ : std::string();
    stack_.push_back(insert(std::move(container)));
    keys_.push_back(std::move(key));
    return true;
  }
  bool close() {
    stack_.pop_back();
    keys_.pop_back();
    return true;
  }

  const std::string& source_;
  Mode mode_ = Mode::dom;
  std::vector<json*> stack_;       // open containers, outermost first
  std::vector<std::string> keys_;  // the key each open container has in its parent
  std::string pending_key_;
  bool in_merge_pair_ = false;
  std::vector<std::string> merge_parts_;
};

// Words longer than this are not cached: they are rare and would crowd out
// the short, frequent words the cache is for.
constexpr std::size_t kMaxCachedWordBytes = 256;
constexpr std::size_t kWordCacheCapacity = 10000;  // tokenizers' default

}  // namespace

// ---------------------------------------------------------------------------
struct Tokenizer::Impl {
  std::string source;

  // normalizer / pre-tokenizer / model options
  bool normalize_nfc = false;
  std::vector<std::unique_ptr<SplitRegex>> splits;
  bool ignore_merges = false;

  // vocabulary, in raw bytes
  std::vector<std::string> id_bytes;  // by id: model and added tokens
  std::vector<IdKind> id_kinds;
  BytesToIdIndex model_ids;  // model tokens only, by their bytes
  std::array<TokenId, 256> byte_token_ids{};
  std::size_t model_vocab_size = 0;
  MergeTable merges;

  // added tokens; the matchers hold pointers into `added`, which is complete
  // before they are built and never changes afterwards
  std::vector<AddedToken> added;
  StringToId added_ids_by_content;
  AddedTokenMatcher raw_text_matcher;         // normalized == false
  AddedTokenMatcher normalized_text_matcher;  // normalized == true

  TokenizerConfig config;

  // Word cache: owned by this tokenizer, bounded, guarded by a mutex.
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<TokenId>, StringHash, std::equal_to<>> cache;
  mutable std::size_t cache_hits = 0;
  mutable std::size_t cache_misses = 0;

  void check_id(TokenId id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= id_kinds.size() || id_kinds[id] == IdKind::unused)
      throw TokenizerError(
          fmt::format("{}: token id {} is not in the vocabulary (size {})", source, id, id_kinds.size()));
  }

  std::string normalize(std::string_view text) const {
    if (!normalize_nfc || is_ascii(text)) return std::string(text);  // ASCII is its own NFC
    utf8proc_uint8_t* mapped = nullptr;
    const utf8proc_ssize_t length =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), static_cast<utf8proc_ssize_t>(text.size()),
                     &mapped, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (length < 0) {
      throw TokenizerError(fmt::format("{}: NFC normalization failed: {}", source, utf8proc_errmsg(length)));
    }
    std::string result(reinterpret_cast<const char*>(mapped), static_cast<std::size_t>(length));
    std::free(mapped);
    return result;
  }

  void pre_tokenize(std::string_view text, std::vector<std::string_view>& words) const {
    if (splits.empty()) {
      if (!text.empty()) words.push_back(text);
      return;
    }
    splits.front()->split(text, words);
    // Later Split steps refine each piece of the earlier ones.
    for (std::size_t step = 1; step < splits.size(); ++step) {
      std::vector<std::string_view> refined;
      for (std::string_view piece : words) splits[step]->split(piece, refined);
      words = std::move(refined);
    }
  }

  void bpe(std::string_view word, BpeScratch& scratch, std::vector<TokenId>& out) const {
    if (word.size() == 1) {
      out.push_back(byte_token_ids[static_cast<unsigned char>(word[0])]);
      return;
    }
    if (ignore_merges) {
      if (const TokenId id = model_ids.find(word, id_bytes); id >= 0) {
        out.push_back(id);
        return;
      }
    }
    if (word.size() <= kScanningBpeMaxBytes) {
      bpe_by_scanning(word, scratch, out);
    } else {
      bpe_with_queue(word, scratch, out);
    }
  }

  // Short words: keep each adjacent pair's rank in an array, merge the lowest
  // (leftmost on ties), and re-look-up only the two pairs the merge touched.
  // Same merge order as the queue version: tokenizers' queue pops the lowest
  // (rank, position) among live pairs, and positions follow word order.
  void bpe_by_scanning(std::string_view word, BpeScratch& scratch, std::vector<TokenId>& out) const {
    auto& ids = scratch.ids;
    auto& ranks = scratch.pair_ranks;
    auto& merged_ids = scratch.pair_merged_ids;
    ids.clear();
    for (unsigned char byte : word) ids.push_back(byte_token_ids[byte]);
    ranks.resize(ids.size() - 1);
    merged_ids.resize(ids.size() - 1);
    auto look_up_pair = [&](std::size_t i) {
      const auto* merge = merges.find(ids[i], ids[i + 1]);
      ranks[i] = merge != nullptr ? merge->rank : kNoMerge;
      merged_ids[i] = merge != nullptr ? merge->merged_id : -1;
    };
    for (std::size_t i = 0; i + 1 < ids.size(); ++i) look_up_pair(i);
    while (!ranks.empty()) {
      const auto lowest = std::min_element(ranks.begin(), ranks.end());  // first of equals: leftmost
      if (*lowest == kNoMerge) break;
      const auto i = static_cast<std::size_t>(lowest - ranks.begin());
      ids[i] = merged_ids[i];
      ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      ranks.erase(lowest);
      merged_ids.erase(merged_ids.begin() + static_cast<std::ptrdiff_t>(i));
      if (i > 0) look_up_pair(i - 1);
      if (i < ranks.size()) look_up_pair(i);
    }
    out.insert(out.end(), ids.begin(), ids.end());
  }

  // Long words: tokenizers' algorithm, a min-queue of (rank, position) over a
  // linked list of symbols, O(n log n).
  void bpe_with_queue(std::string_view word, BpeScratch& scratch, std::vector<TokenId>& out) const {
    auto& symbols = scratch.symbols;
    auto& heap = scratch.heap;
    const auto count = static_cast<std::int32_t>(word.size());
    symbols.clear();
    heap.clear();
    for (std::int32_t i = 0; i < count; ++i) {
      symbols.push_back({byte_token_ids[static_cast<unsigned char>(word[i])], i - 1, i + 1 < count ? i + 1 : -1, 1});
    }
    for (std::int32_t i = 0; i + 1 < count; ++i) {
      if (const auto* merge = merges.find(symbols[i].id, symbols[i + 1].id))
        heap.push_back({merge->rank, static_cast<std::uint32_t>(i), merge->merged_id});
    }
    std::make_heap(heap.begin(), heap.end());
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end());
      const BpeScratch::Candidate candidate = heap.back();
      heap.pop_back();
      auto& left = symbols[candidate.position];
      // Entries go stale when a neighbour merged first; check the pair still exists.
      if (left.length == 0 || left.next < 0) continue;
      auto& right = symbols[left.next];
      const auto* current = merges.find(left.id, right.id);
      if (current == nullptr || current->merged_id != candidate.merged_id) continue;

      left.id = candidate.merged_id;
      left.length += right.length;
      right.length = 0;
      left.next = right.next;
      if (left.next >= 0) symbols[left.next].previous = static_cast<std::int32_t>(candidate.position);

      if (left.previous >= 0) {
        if (const auto* merge = merges.find(symbols[left.previous].id, left.id)) {
          heap.push_back({merge->rank, static_cast<std::uint32_t>(left.previous), merge->merged_id});
          std::push_heap(heap.begin(), heap.end());
        }
      }
      if (left.next >= 0) {
        if (const auto* merge = merges.find(left.id, symbols[left.next].id)) {
          heap.push_back({merge->rank, candidate.position, merge->merged_id});
          std::push_heap(heap.begin(), heap.end());
        }
      }
    }
    for (std::int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
  }

  // The textbook loop: scan all pairs, merge the lowest-ranked (leftmost on a
  // tie), repeat. O(n^2) per word; kept as the benchmark baseline and as an
  // independent check of the priority-queue version.
  void naive_bpe(std::string_view word, BpeScratch& scratch, std::vector<TokenId>& out) const {
    auto& ids = scratch.ids;
    ids.clear();
    for (unsigned char byte : word) ids.push_back(byte_token_ids[byte]);
    while (ids.size() > 1) {
      std::uint32_t best_rank = std::numeric_limits<std::uint32_t>::max();
      std::size_t best_position = 0;
      TokenId best_merged = -1;
      for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
        const auto* merge = merges.find(ids[i], ids[i + 1]);
        if (merge != nullptr && merge->rank < best_rank) {
          best_rank = merge->rank;
          best_position = i;
          best_merged = merge->merged_id;
        }
      }
      if (best_merged < 0) break;
      ids[best_position] = best_merged;
      ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(best_position) + 1);
    }
    out.insert(out.end(), ids.begin(), ids.end());
  }

  void cached_bpe(std::string_view word, BpeScratch& scratch, std::vector<TokenId>& out) const {
    if (word.size() == 1) {
      out.push_back(byte_token_ids[static_cast<unsigned char>(word[0])]);
      return;
    }
    const bool cacheable = word.size() <= kMaxCachedWordBytes;
    if (cacheable) {
      std::lock_guard lock(cache_mutex);
      if (auto it = cache.find(word); it != cache.end()) {
        ++cache_hits;
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
      ++cache_misses;
    }
    const std::size_t first = out.size();
    bpe(word, scratch, out);
    if (cacheable) {
      std::lock_guard lock(cache_mutex);
      // Clearing when full is cruder than LRU but bounded and cheap; the hot
      // words of a workload come back within a few hundred words.
      if (cache.size() >= kWordCacheCapacity) cache.clear();
      cache.emplace(std::string(word),
                    std::vector<TokenId>(out.begin() + static_cast<std::ptrdiff_t>(first), out.end()));
    }
  }

  void encode_plain_text(std::string_view raw_segment, bool skip_special, std::vector<TokenId>& out,
                         BpeScratch& scratch, std::vector<std::string_view>& words) const {
    const std::string normalized = normalize(raw_segment);
    std::vector<AddedTokenMatcher::Segment> segments;
    normalized_text_matcher.split(normalized, skip_special, segments);
    for (const auto& segment : segments) {
      if (segment.token != nullptr) {
        out.push_back(segment.token->id);
        continue;
      }
      words.clear();
      pre_tokenize(segment.text, words);
      for (std::string_view word : words) cached_bpe(word, scratch, out);
    }
  }

  std::vector<TokenId> encode(std::string_view text, bool skip_special) const {
    if (!is_valid_utf8(text)) throw TokenizerError(fmt::format("{}: encode: input is not valid UTF-8", source));
    std::vector<TokenId> ids;
    ids.reserve(text.size() / 3 + 4);
    BpeScratch scratch;
    std::vector<std::string_view> words;
    std::vector<AddedTokenMatcher::Segment> segments;
    raw_text_matcher.split(text, skip_special, segments);
    for (const auto& segment : segments) {
      if (segment.token != nullptr) {
        ids.push_back(segment.token->id);
      } else {
        encode_plain_text(segment.text, skip_special, ids, scratch, words);
      }
    }
    return ids;
  }

  // ---- loading ----
  void load_normalizer(const json& normalizer) {
    if (normalizer.is_null()) return;
    const std::string type =
        require_string(require(normalizer, "type", source, "normalizer"), source, "normalizer.type");
    if (type == "NFC") {
      normalize_nfc = true;
    } else if (type == "Sequence") {
      const json& steps = require(normalizer, "normalizers", source, "normalizer");
      if (!steps.is_array()) fail(source, "normalizer.normalizers", "expected an array");
      for (const json& step : steps) load_normalizer(step);
    } else {
      fail(source, "normalizer.type", fmt::format("'{}' is not supported (only NFC)", type));
    }
  }

  void load_pre_tokenizer(const json& pre_tokenizer, const std::string& field) {
    if (pre_tokenizer.is_null()) return;
    const std::string type = require_string(require(pre_tokenizer, "type", source, field), source, field + ".type");
    if (type == "Sequence") {
      const json& steps = require(pre_tokenizer, "pretokenizers", source, field);
      if (!steps.is_array()) fail(source, field + ".pretokenizers", "expected an array");
      for (std::size_t i = 0; i < steps.size(); ++i)
        load_pre_tokenizer(steps[i], fmt::format("{}.pretokenizers[{}]", field, i));
    } else if (type == "Split") {
      const std::string behavior =
          require_string(require(pre_tokenizer, "behavior", source, field), source, field + ".behavior");
      if (behavior != "Isolated")
        fail(source, field + ".behavior", fmt::format("'{}' is not supported (only Isolated)", behavior));
      if (optional_bool(pre_tokenizer, "invert", false, source, field))
        fail(source, field + ".invert", "true is not supported");
      const json& pattern = require(pre_tokenizer, "pattern", source, field);
      if (pattern.contains("Regex")) {
        splits.push_back(
            std::make_unique<SplitRegex>(require_string(pattern["Regex"], source, field + ".pattern.Regex"), false,
                                         source, field + ".pattern.Regex"));
      } else if (pattern.contains("String")) {
        splits.push_back(
            std::make_unique<SplitRegex>(require_string(pattern["String"], source, field + ".pattern.String"), true,
                                         source, field + ".pattern.String"));
      } else {
        fail(source, field + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
      }
    } else if (type == "ByteLevel") {
      if (optional_bool(pre_tokenizer, "add_prefix_space", false, source, field))
        fail(source, field + ".add_prefix_space", "true is not supported");
      if (optional_bool(pre_tokenizer, "use_regex", true, source, field)) {
        // ByteLevel's own regex is GPT-2's word split.
        splits.push_back(std::make_unique<SplitRegex>(
            R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)", false, source,
            field + ".use_regex"));
      }
      // The byte->char mapping itself needs no work: we tokenize raw bytes.
    } else {
      fail(source, field + ".type", fmt::format("'{}' is not supported (only Split, ByteLevel, Sequence)", type));
    }
  }

  void check_byte_level_component(const json& component, const char* field) {
    if (component.is_null()) return;
    const std::string type =
        require_string(require(component, "type", source, field), source, fmt::format("{}.type", field));
    if (type != "ByteLevel")
      fail(source, fmt::format("{}.type", field), fmt::format("'{}' is not supported (only ByteLevel)", type));
  }

  void load_model(const json& model, TokenizerJsonReader& reader) {
    const std::string type = require_string(require(model, "type", source, "model"), source, "model.type");
    if (type != "BPE") fail(source, "model.type", fmt::format("'{}' is not supported (only BPE)", type));
    if (auto it = model.find("dropout"); it != model.end() && !it->is_null())
      fail(source, "model.dropout", "BPE dropout is not supported");
    if (optional_bool(model, "byte_fallback", false, source, "model"))
      fail(source, "model.byte_fallback", "true is not supported");
    for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      auto it = model.find(affix);
      if (it != model.end() && !it->is_null() && !(it->is_string() && it->get_ref<const std::string&>().empty()))
        fail(source, fmt::format("model.{}", affix), "a non-empty value is not supported");
    }
    ignore_merges = optional_bool(model, "ignore_merges", false, source, "model");

    if (!reader.saw_vocab)
      fail(source, "model.vocab", model.contains("vocab") ? "expected an object of token -> id" : "missing");
    if (!reader.saw_merges) fail(source, "model.merges", model.contains("merges") ? "expected an array" : "missing");

    model_vocab_size = reader.vocab.size();
    std::size_t id_space = 0;
    for (const auto& entry : reader.vocab) id_space = std::max(id_space, static_cast<std::size_t>(entry.id) + 1);
    id_bytes.resize(id_space);
    id_kinds.assign(id_space, IdKind::unused);
    for (auto& entry : reader.vocab) {
      const auto id = static_cast<TokenId>(entry.id);
      if (id_kinds[id] != IdKind::unused)
        fail(source, fmt::format("model.vocab[\"{}\"]", bytes_to_byte_level(entry.bytes)),
             fmt::format("id {} is also used by '{}'", id, bytes_to_byte_level(id_bytes[id])));
      id_bytes[id] = std::move(entry.bytes);
      id_kinds[id] = IdKind::model;
      if (const TokenId other = model_ids.insert(id, id_bytes); other >= 0)
        fail(source, fmt::format("model.vocab[\"{}\"]", bytes_to_byte_level(id_bytes[id])),
             fmt::format("listed twice (ids {} and {})", other, id));
    }
    reader.vocab = {};
    for (int byte = 0; byte < 256; ++byte) {
      const char as_char = static_cast<char>(byte);
      const TokenId id = model_ids.find(std::string_view(&as_char, 1), id_bytes);
      if (id < 0)
        fail(source, "model.vocab",
             fmt::format("no token for byte 0x{:02X} ('{}'); a byte-level vocabulary needs all 256", byte,
                         bytes_to_byte_level(std::string_view(&as_char, 1))));
      byte_token_ids[byte] = id;
    }

    merges.reserve(reader.merges.size());
    std::string merged_bytes;
    for (std::size_t rank = 0; rank < reader.merges.size(); ++rank) {
      const auto& entry = reader.merges[rank];
      auto id_of = [&](std::string_view bytes) {
        const TokenId id = model_ids.find(bytes, id_bytes);
        if (id < 0)
          fail(source, fmt::format("model.merges[{}]", rank),
               fmt::format("token '{}' is not in model.vocab", bytes_to_byte_level(bytes)));
        return id;
      };
      const TokenId left = id_of(entry.left);
      const TokenId right = id_of(entry.right);
      merged_bytes.assign(entry.left).append(entry.right);
      const TokenId merged = model_ids.find(merged_bytes, id_bytes);
      if (merged < 0)
        fail(source, fmt::format("model.merges[{}]", rank),
             fmt::format("merged token '{}' is not in model.vocab", bytes_to_byte_level(merged_bytes)));
      merges.insert(left, right, {static_cast<std::uint32_t>(rank), merged});
    }
    reader.merges = {};
  }

  void load_added_tokens(const json& list) {
    if (list.is_null()) return;
    if (!list.is_array()) fail(source, "added_tokens", "expected an array");
    added.reserve(list.size());
    for (std::size_t i = 0; i < list.size(); ++i) {
      const std::string field = fmt::format("added_tokens[{}]", i);
      const json& entry = list[i];
      AddedToken token;
      const json& id_value = require(entry, "id", source, field);
      if (!id_value.is_number_integer() || id_value.get<std::int64_t>() < 0 ||
          id_value.get<std::int64_t>() > std::numeric_limits<TokenId>::max())
        fail(source, field + ".id", "expected a non-negative integer");
      token.id = id_value.get<TokenId>();
      token.content = require_string(require(entry, "content", source, field), source, field + ".content");
      token.special = optional_bool(entry, "special", false, source, field);
      token.lstrip = optional_bool(entry, "lstrip", false, source, field);
      token.rstrip = optional_bool(entry, "rstrip", false, source, field);
      token.single_word = optional_bool(entry, "single_word", false, source, field);
      // tokenizers' default: special tokens are matched on raw text.
      token.normalized = optional_bool(entry, "normalized", !token.special, source, field);
      if (token.content.empty()) fail(source, field + ".content", "empty");
      if (!is_valid_utf8(token.content)) fail(source, field + ".content", "not valid UTF-8");
      added.push_back(std::move(token));
    }
    // Pointers into `added` are taken only now that it no longer grows.
    for (const AddedToken& token : added) {
      const auto index = static_cast<std::size_t>(token.id);
      if (index >= id_bytes.size()) {
        id_bytes.resize(index + 1);
        id_kinds.resize(index + 1, IdKind::unused);
      }
      // Added tokens decode to their text as written: since tokenizers PR
      // #1513 (2024) they bypass the ByteLevel decoder, which used to garble
      // contents using characters of the byte-level alphabet such as "Ö".
      id_bytes[index] = token.content;
      id_kinds[index] = token.special ? IdKind::added_special : IdKind::added;
      added_ids_by_content[token.content] = token.id;
      (token.normalized ? normalized_text_matcher : raw_text_matcher).add(token);
    }
  }
};

// ---------------------------------------------------------------------------
TokenizerConfig load_tokenizer_config(const std::filesystem::path& file) {
  const std::string source = file.string();
  const json root = parse_json(read_file(file), source);
  if (!root.is_object()) fail(source, "(root)", "expected an object");
  TokenizerConfig config;

  auto token_field = [&](const char* key) -> std::optional<std::string> {
    auto it = root.find(key);
    if (it == root.end() || it->is_null()) return std::nullopt;
    if (it->is_string()) return it->get<std::string>();
    if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
      return (*it)["content"].get<std::string>();
    fail(source, key, "expected a string, {\"content\": ...} or null");
  };
  config.bos_token = token_field("bos_token");
  config.eos_token = token_field("eos_token");
  config.pad_token = token_field("pad_token");
  config.unk_token = token_field("unk_token");
  config.add_bos_token = optional_bool(root, "add_bos_token", false, source, "(root)");
  config.add_eos_token = optional_bool(root, "add_eos_token", false, source, "(root)");
  config.clean_up_tokenization_spaces = optional_bool(root, "clean_up_tokenization_spaces", false, source, "(root)");
  config.split_special_tokens = optional_bool(root, "split_special_tokens", false, source, "(root)");
  if (auto it = root.find("model_max_length"); it != root.end() && !it->is_null()) {
    // Some files write 1e30 for "no limit"; keep only sensible integers.
    if (it->is_number_unsigned()) config.model_max_length = it->get<std::size_t>();
  }
  if (auto it = root.find("tokenizer_class"); it != root.end() && it->is_string())
    config.tokenizer_class = it->get<std::string>();
  if (auto it = root.find("additional_special_tokens"); it != root.end() && !it->is_null()) {
    if (!it->is_array()) fail(source, "additional_special_tokens", "expected an array");
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& entry = (*it)[i];
      if (entry.is_string()) {
        config.additional_special_tokens.push_back(entry.get<std::string>());
      } else if (entry.is_object() && entry.contains("content")) {
        config.additional_special_tokens.push_back(
            require_string(entry["content"], source, fmt::format("additional_special_tokens[{}].content", i)));
      } else {
        fail(source, fmt::format("additional_special_tokens[{}]", i), "expected a string or {\"content\": ...}");
      }
    }
  }
  if (auto it = root.find("chat_template"); it != root.end() && !it->is_null()) {
    if (it->is_string()) {
      config.chat_template = it->get<std::string>();
    } else if (it->is_array()) {
      for (std::size_t i = 0; i < it->size(); ++i) {
        const std::string field = fmt::format("chat_template[{}]", i);
        const json& entry = (*it)[i];
        const std::string name = require_string(require(entry, "name", source, field), source, field + ".name");
        config.named_chat_templates[name] =
            require_string(require(entry, "template", source, field), source, field + ".template");
      }
      if (auto named = config.named_chat_templates.find("default"); named != config.named_chat_templates.end())
        config.chat_template = named->second;
    } else {
      fail(source, "chat_template", "expected a string or a list of {name, template}");
    }
  }
  if (config.chat_template.empty()) {
    const auto jinja = file.parent_path() / "chat_template.jinja";
    if (std::filesystem::exists(jinja)) config.chat_template = read_file(jinja);
  }
  return config;
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_json_text(std::string_view json_text, std::string source_name) {
  auto impl = std::make_unique<Impl>();
  impl->source = std::move(source_name);
  TokenizerJsonReader reader(impl->source);
  json::sax_parse(json_text.begin(), json_text.end(), &reader);
  const json& root = reader.root;
  if (!root.is_object()) fail(impl->source, "(root)", "expected an object");
  for (const char* unsupported : {"truncation", "padding"}) {
    if (auto it = root.find(unsupported); it != root.end() && !it->is_null())
      fail(impl->source, unsupported, "only null is supported");
  }
  impl->load_normalizer(root.value("normalizer", json()));
  impl->load_pre_tokenizer(root.value("pre_tokenizer", json()), "pre_tokenizer");
  impl->check_byte_level_component(root.value("decoder", json()), "decoder");
  impl->check_byte_level_component(root.value("post_processor", json()), "post_processor");
  impl->load_model(require(root, "model", impl->source, "(root)"), reader);
  impl->load_added_tokens(root.value("added_tokens", json()));
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_file(const std::filesystem::path& tokenizer_json_or_dir) {
  const bool is_dir = std::filesystem::is_directory(tokenizer_json_or_dir);
  const auto json_file = is_dir ? tokenizer_json_or_dir / "tokenizer.json" : tokenizer_json_or_dir;
  Tokenizer tokenizer = from_json_text(read_file(json_file), json_file.string());
  const auto config_file = json_file.parent_path() / "tokenizer_config.json";
  if (std::filesystem::exists(config_file)) tokenizer.impl_->config = load_tokenizer_config(config_file);
  return tokenizer;
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, SpecialTokenText special) const {
  return impl_->encode(text, special == SpecialTokenText::as_text);
}

std::string Tokenizer::decode(std::span<const TokenId> ids, bool skip_special_tokens) const {
  std::string bytes;
  for (TokenId id : ids) {
    impl_->check_id(id);
    if (skip_special_tokens && impl_->id_kinds[id] == IdKind::added_special) continue;
    bytes += impl_->id_bytes[id];
  }
  std::string text;
  text.reserve(bytes.size());
  append_utf8_lossy(bytes, text, /*final=*/true);
  return text;
}

const std::string& Tokenizer::token_bytes(TokenId id) const {
  impl_->check_id(id);
  return impl_->id_bytes[id];
}

std::optional<TokenId> Tokenizer::token_to_id(std::string_view token) const {
  if (auto it = impl_->added_ids_by_content.find(token); it != impl_->added_ids_by_content.end()) return it->second;
  if (!is_valid_utf8(token)) return std::nullopt;
  auto bytes = byte_level_to_bytes(token);
  if (!bytes) return std::nullopt;
  const TokenId id = impl_->model_ids.find(*bytes, impl_->id_bytes);
  if (id >= 0 && impl_->id_kinds[id] == IdKind::model) return id;
  return std::nullopt;
}

TokenId Tokenizer::require_token_id(std::string_view token) const {
  if (auto id = token_to_id(token)) return *id;
  throw TokenizerError(fmt::format("{}: token '{}' is not in the vocabulary", impl_->source, token));
}

std::string Tokenizer::id_to_token(TokenId id) const {
  impl_->check_id(id);
  if (impl_->id_kinds[id] != IdKind::model) {
    for (const AddedToken& token : impl_->added)
      if (token.id == id) return token.content;
  }
  return bytes_to_byte_level(impl_->id_bytes[id]);
}

std::size_t Tokenizer::vocab_size() const { return impl_->id_kinds.size(); }
std::size_t Tokenizer::model_vocab_size() const { return impl_->model_vocab_size; }

bool Tokenizer::contains(TokenId id) const {
  return id >= 0 && static_cast<std::size_t>(id) < impl_->id_kinds.size() && impl_->id_kinds[id] != IdKind::unused;
}

bool Tokenizer::is_special(TokenId id) const {
  impl_->check_id(id);
  return impl_->id_kinds[id] == IdKind::added_special;
}

const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added; }
const TokenizerConfig& Tokenizer::config() const { return impl_->config; }

std::optional<TokenId> Tokenizer::eos_token_id() const {
  return impl_->config.eos_token ? token_to_id(*impl_->config.eos_token) : std::nullopt;
}
std::optional<TokenId> Tokenizer::bos_token_id() const {
  return impl_->config.bos_token ? token_to_id(*impl_->config.bos_token) : std::nullopt;
}
std::optional<TokenId> Tokenizer::pad_token_id() const {
  return impl_->config.pad_token ? token_to_id(*impl_->config.pad_token) : std::nullopt;
}

std::string Tokenizer::normalize(std::string_view text) const {
  if (!is_valid_utf8(text)) throw TokenizerError(fmt::format("{}: normalize: input is not valid UTF-8", impl_->source));
  return impl_->normalize(text);
}

std::vector<std::string_view> Tokenizer::pre_tokenize(std::string_view normalized_text) const {
  if (!is_valid_utf8(normalized_text))
    throw TokenizerError(fmt::format("{}: pre_tokenize: input is not valid UTF-8", impl_->source));
  std::vector<std::string_view> words;
  impl_->pre_tokenize(normalized_text, words);
  return words;
}

std::vector<TokenId> Tokenizer::bpe_word(std::string_view word_bytes, BpeAlgorithm algorithm) const {
  return bpe_words(std::span<const std::string_view>(&word_bytes, 1), algorithm);
}

std::vector<TokenId> Tokenizer::bpe_words(std::span<const std::string_view> words, BpeAlgorithm algorithm) const {
  BpeScratch scratch;
  std::vector<TokenId> ids;
  for (std::string_view word : words) {
    if (word.empty()) continue;
    switch (algorithm) {
      case BpeAlgorithm::automatic: impl_->bpe(word, scratch, ids); break;
      case BpeAlgorithm::scanning: impl_->bpe_by_scanning(word, scratch, ids); break;
      case BpeAlgorithm::priority_queue: impl_->bpe_with_queue(word, scratch, ids); break;
      case BpeAlgorithm::naive: impl_->naive_bpe(word, scratch, ids); break;
    }
  }
  return ids;
}

Tokenizer::CacheStats Tokenizer::cache_stats() const {
  std::lock_guard lock(impl_->cache_mutex);
  return {impl_->cache_hits, impl_->cache_misses, impl_->cache.size(), kWordCacheCapacity};
}

void Tokenizer::clear_cache() const {
  std::lock_guard lock(impl_->cache_mutex);
  impl_->cache.clear();
}

// ---------------------------------------------------------------------------
StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(&tokenizer), skip_special_tokens_(skip_special_tokens) {}

std::string StreamingDecoder::push(TokenId id) {
  const std::string& bytes = tokenizer_->token_bytes(id);  // throws for unknown ids
  if (skip_special_tokens_ && tokenizer_->is_special(id)) return {};
  pending_ += bytes;
  std::string text;
  const std::size_t consumed = append_utf8_lossy(pending_, text, /*final=*/false);
  pending_.erase(0, consumed);
  return text;
}

std::string StreamingDecoder::finish() {
  std::string text;
  append_utf8_lossy(pending_, text, /*final=*/true);
  pending_.clear();
  return text;
}

}  // namespace quanteval::runtime
