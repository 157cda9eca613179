#pragma once
// Byte-level BPE tokenizer read from a Hugging Face `tokenizer.json`, producing
// the same ids as transformers/tokenizers (checked against the Qwen3 reference).
//
// What is supported (anything else is refused with a TokenizerError naming the
// field, never silently approximated):
//   normalizer     null | NFC | Sequence of those
//   pre_tokenizer  Split (Regex or String pattern, behavior "Isolated", invert false)
//                  and ByteLevel (add_prefix_space, use_regex), alone or in a Sequence
//   model          BPE with byte-level vocabulary, merges as "a b" strings or
//                  ["a","b"] pairs, no dropout, no byte_fallback, no subword affixes
//   decoder        null | ByteLevel
//   post_processor null | ByteLevel (ids are never added: add_special_tokens=False)
//   added_tokens   special and not special, with lstrip/rstrip/single_word/normalized
//
// Thread safety: a Tokenizer is immutable after construction except for its
// word cache, which is guarded by a mutex, so one Tokenizer may be shared by
// threads. A StreamingDecoder is per stream and not thread-safe.
//
// Differences from tokenizers, on purpose: ids out of range make decode throw
// (tokenizers silently drops them); encode() takes UTF-8 and throws on invalid
// UTF-8 (a Python str cannot hold it).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/text/utf8.hpp"  // append_utf8_lossy

namespace quanteval::runtime {

using TokenId = std::int32_t;

// Any problem loading or using a tokenizer. Messages name the file and the
// JSON field (e.g. "tokenizer.json: model.type: 'WordPiece' is not supported").
struct TokenizerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// An entry of tokenizer.json's "added_tokens".
struct AddedToken {
  TokenId id = 0;
  std::string content;  // UTF-8 text as written in the input, e.g. "<|im_end|>"
  bool special = false;
  bool lstrip = false;       // also swallow whitespace to the left of the match
  bool rstrip = false;       // also swallow whitespace to the right of the match
  bool single_word = false;  // match only when not glued to word characters
  bool normalized = false;   // matched on normalized (NFC) text instead of raw text
};

// The fields of tokenizer_config.json that the chat-template module and the
// generator need. Token fields accept both "text" and {"content": "text"}.
struct TokenizerConfig {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
  std::optional<std::string> pad_token;
  std::optional<std::string> unk_token;
  bool add_bos_token = false;
  bool add_eos_token = false;
  bool clean_up_tokenization_spaces = false;  // read only; decode() never applies it
  bool split_special_tokens = false;
  std::optional<std::size_t> model_max_length;
  std::string tokenizer_class;
  std::vector<std::string> additional_special_tokens;
  // The default chat template ("" when none). When tokenizer_config.json has a
  // list of named templates, the one named "default" is used here and all are
  // kept in named_chat_templates. A chat_template.jinja beside the config is
  // used when the config itself has none.
  std::string chat_template;
  std::map<std::string, std::string> named_chat_templates;
};

// Reads tokenizer_config.json (throws TokenizerError naming file and field).
TokenizerConfig load_tokenizer_config(const std::filesystem::path& file);

// How encode() treats the text of special added tokens found in the input.
enum class SpecialTokenText {
  recognize,  // "<|im_end|>" in the text becomes its id (transformers' default)
  as_text,    // special tokens are tokenized as plain text (split_special_tokens=True);
              // non-special added tokens such as "<think>" are still recognized
};

class Tokenizer {
 public:
  // Reads `tokenizer.json` (file) or `<dir>/tokenizer.json` plus, when present,
  // `<dir>/tokenizer_config.json`.
  static Tokenizer from_file(const std::filesystem::path& tokenizer_json_or_dir);
  // From the text of tokenizer.json; `source_name` is used in error messages.
  static Tokenizer from_json_text(std::string_view json_text, std::string source_name = "tokenizer.json");

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Text (UTF-8) -> ids, as tokenizer(text, add_special_tokens=False).
  std::vector<TokenId> encode(std::string_view text, SpecialTokenText special = SpecialTokenText::recognize) const;

  // Ids -> text as tokenizer.decode(ids, skip_special_tokens=...): bytes that
  // are not valid UTF-8 become U+FFFD (one per maximal invalid subpart, like
  // Rust's String::from_utf8_lossy). Throws TokenizerError for unknown ids.
  std::string decode(std::span<const TokenId> ids, bool skip_special_tokens = false) const;

  // The raw bytes a token stands for (may be an incomplete UTF-8 sequence).
  const std::string& token_bytes(TokenId id) const;

  // Token spelling as in tokenizer.json ("Ġhello", "<|im_end|>") <-> id.
  std::optional<TokenId> token_to_id(std::string_view token) const;
  std::string id_to_token(TokenId id) const;
  // Like token_to_id but throws TokenizerError naming the token.
  TokenId require_token_id(std::string_view token) const;

  // Number of ids in use: model vocabulary plus added tokens (len(tokenizer)).
  std::size_t vocab_size() const;
  // The BPE model's own vocabulary, without added tokens (tokenizer.vocab_size).
  std::size_t model_vocab_size() const;
  // True when `id` is a token of this tokenizer (model or added), i.e. decode()
  // accepts it. Ids past vocab_size() and unused ids inside the range are not:
  // a checkpoint's embedding often has more rows than its tokenizer has ids.
  bool contains(TokenId id) const;

  bool is_special(TokenId id) const;
  const std::vector<AddedToken>& added_tokens() const;

  // tokenizer_config.json when it was found beside tokenizer.json, else defaults.
  const TokenizerConfig& config() const;
  // Ids of the config's eos/bos/pad tokens when set and known.
  std::optional<TokenId> eos_token_id() const;
  std::optional<TokenId> bos_token_id() const;
  std::optional<TokenId> pad_token_id() const;

  // Pieces of the pipeline, exposed for tests and the benchmark.
  // NFC-normalizes (or whatever the normalizer says) a UTF-8 string.
  std::string normalize(std::string_view text) const;
  // Splits normalized text into pre-tokens (the Split regex, Isolated).
  std::vector<std::string_view> pre_tokenize(std::string_view normalized_text) const;
  // BPE of one pre-token's bytes, bypassing the cache. All algorithms merge
  // the lowest-ranked adjacent pair, leftmost on ties, and give identical ids:
  enum class BpeAlgorithm {
    automatic,       // what encode() uses: scanning for short words, queue for long
    scanning,        // pair ranks in an array, linear scan per merge
    priority_queue,  // tokenizers' min-queue over a linked list, O(n log n)
    naive,           // textbook loop re-looking-up every pair per merge (baseline)
  };
  std::vector<TokenId> bpe_word(std::string_view word_bytes, BpeAlgorithm algorithm = BpeAlgorithm::automatic) const;
  // The same for many words, ids concatenated; reuses buffers across words
  // (as encode() does), so timing it measures the merge loop, not malloc.
  std::vector<TokenId> bpe_words(std::span<const std::string_view> words,
                                 BpeAlgorithm algorithm = BpeAlgorithm::automatic) const;

  // Word cache statistics (cumulative).
  struct CacheStats {
    std::size_t hits = 0, misses = 0, entries = 0, capacity = 0;
  };
  CacheStats cache_stats() const;
  void clear_cache() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Streaming detokenizer: feed ids as they are generated, get text chunks that
// are always valid UTF-8. Bytes of a character split across tokens are held
// back until the character is complete; bytes that can never become valid are
// emitted as U+FFFD at once. The concatenation of all push() results and
// finish() equals Tokenizer::decode of all ids.
class StreamingDecoder {
 public:
  // The tokenizer must outlive the decoder.
  explicit StreamingDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);

  // Text that became complete with this token (possibly empty).
  std::string push(TokenId id);
  // Flushes what is held back (an incomplete tail becomes U+FFFD) and resets.
  std::string finish();
  // Bytes currently held back (0 to 3).
  std::size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tokenizer_;
  bool skip_special_tokens_;
  std::string pending_;
};

}  // namespace quanteval::runtime
