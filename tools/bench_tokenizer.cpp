// Tokenizer benchmark: encodes all HumanEval prompts and prompt+solution texts
// N times and prints throughput per stage, with baselines measured in the same
// run so the numbers read as ratios:
//   - pre-tokenization alone (NFC + Split regex), the floor any BPE sits on;
//   - BPE with the textbook O(n^2) merge loop and no cache;
//   - BPE with the priority queue, with the scanning loop, and with the
//     automatic choice between them, all without the cache;
//   - the real encode() (priority queue + per-tokenizer word cache).
// Also times loading tokenizer.json and decoding / streaming the ids back.
//
// usage: bench_tokenizer <HumanEval.jsonl.gz> <tokenizer dir or tokenizer.json> [repeats=20]
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "datasets/datasets.hpp"
#include "runtime/text/tokenizer.hpp"

namespace {

using quanteval::runtime::StreamingDecoder;
using quanteval::runtime::TokenId;
using quanteval::runtime::Tokenizer;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Runs `pass` `repeats` times and returns the best time of one pass: the
// minimum is the least noisy estimate on a shared machine.
double best_pass_seconds(int repeats, const std::function<void()>& pass) {
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    pass();
    best = std::min(best, seconds_since(start));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: {} <HumanEval.jsonl.gz> <tokenizer dir or tokenizer.json> [repeats=20]\n", argv[0]);
    return 2;
  }
  try {
    const int repeats = argc > 3 ? std::max(1, std::atoi(argv[3])) : 20;
    const auto problems = quanteval::datasets::parse_problems(argv[1]);
    std::vector<std::string> texts;
    std::size_t total_bytes = 0;
    for (const auto& problem : problems) {
      texts.push_back(problem.prompt);
      texts.push_back(problem.prompt + problem.canonical_solution);
    }
    for (const auto& text : texts) total_bytes += text.size();

    auto load_start = std::chrono::steady_clock::now();
    const Tokenizer tokenizer = Tokenizer::from_file(argv[2]);
    const double load_seconds = seconds_since(load_start);

    std::size_t total_tokens = 0;
    std::vector<std::vector<TokenId>> encoded;
    for (const auto& text : texts) {
      encoded.push_back(tokenizer.encode(text));
      total_tokens += encoded.back().size();
    }

    // Pre-tokenized words, for the stages that time BPE alone.
    std::vector<std::string> normalized;
    for (const auto& text : texts) normalized.push_back(tokenizer.normalize(text));
    std::vector<std::string_view> words;
    for (const auto& text : normalized)
      for (std::string_view word : tokenizer.pre_tokenize(text)) words.push_back(word);

    std::size_t sink = 0;  // keeps the optimizer from dropping the work
    struct Row {
      std::string stage;
      double seconds;
    };
    std::vector<Row> rows;
    rows.push_back({"pre-tokenize only (NFC + regex)", best_pass_seconds(repeats, [&] {
                      for (const auto& text : texts) sink += tokenizer.pre_tokenize(tokenizer.normalize(text)).size();
                    })});
    using Algorithm = Tokenizer::BpeAlgorithm;
    auto bpe_all_words = [&](Algorithm algorithm) {
      return [&, algorithm] { sink += tokenizer.bpe_words(words, algorithm).size(); };
    };
    rows.push_back({"BPE, naive O(n^2) loop, no cache", best_pass_seconds(repeats, bpe_all_words(Algorithm::naive))});
    rows.push_back(
        {"BPE, priority queue, no cache", best_pass_seconds(repeats, bpe_all_words(Algorithm::priority_queue))});
    rows.push_back({"BPE, scanning, no cache", best_pass_seconds(repeats, bpe_all_words(Algorithm::scanning))});
    rows.push_back(
        {"BPE, automatic (encode's), no cache", best_pass_seconds(repeats, bpe_all_words(Algorithm::automatic))});
    rows.push_back({"encode(), cache cleared each pass", best_pass_seconds(repeats, [&] {
                      tokenizer.clear_cache();
                      for (const auto& text : texts) sink += tokenizer.encode(text).size();
                    })});
    rows.push_back({"encode(), warm cache", best_pass_seconds(repeats, [&] {
                      for (const auto& text : texts) sink += tokenizer.encode(text).size();
                    })});
    rows.push_back({"decode()", best_pass_seconds(repeats, [&] {
                      for (const auto& ids : encoded) sink += tokenizer.decode(ids).size();
                    })});
    rows.push_back({"StreamingDecoder, token by token", best_pass_seconds(repeats, [&] {
                      for (const auto& ids : encoded) {
                        StreamingDecoder stream(tokenizer);
                        for (TokenId id : ids) sink += stream.push(id).size();
                        sink += stream.finish().size();
                      }
                    })});

    // Stress for long words, where the merge loop's complexity shows: each
    // canonical solution with its whitespace removed ("minified" code) is one
    // word of a few hundred bytes.
    std::vector<std::string> long_words;
    std::size_t long_bytes = 0;
    for (const auto& problem : problems) {
      std::string word;
      for (char c : problem.canonical_solution)
        if (c != ' ' && c != '\n' && c != '\t' && c != '\r') word.push_back(c);
      long_bytes += word.size();
      long_words.push_back(std::move(word));
    }
    const std::vector<std::string_view> long_word_views(long_words.begin(), long_words.end());
    const std::size_t long_tokens = tokenizer.bpe_words(long_word_views).size();
    std::vector<Row> long_rows;
    for (auto [name, algorithm] :
         {std::pair{"naive O(n^2) loop", Algorithm::naive}, std::pair{"priority queue", Algorithm::priority_queue},
          std::pair{"scanning", Algorithm::scanning}, std::pair{"automatic (encode's)", Algorithm::automatic}}) {
      long_rows.push_back({name, best_pass_seconds(repeats, [&, algorithm] {
                             sink += tokenizer.bpe_words(long_word_views, algorithm).size();
                           })});
    }

    const auto stats = tokenizer.cache_stats();
    fmt::print("HumanEval: {} texts (prompts + prompt+solution), {:.2f} MB, {} tokens, {} pre-token words\n",
               texts.size(), total_bytes / 1e6, total_tokens, words.size());
    fmt::print(
        "load tokenizer.json: {:.3f} s; best of {} passes per stage; word cache {} entries, {} hits / {} misses\n\n",
        load_seconds, repeats, stats.entries, stats.hits, stats.misses);
    const double reference_seconds = rows[5].seconds;  // encode with a cold cache
    fmt::print("{:<36} {:>10} {:>12} {:>9} {:>14}\n", "stage", "ms/pass", "tokens/s", "MB/s", "time vs encode");
    for (const auto& row : rows) {
      fmt::print("{:<36} {:>10.2f} {:>12.3e} {:>9.1f} {:>13.2f}x\n", row.stage, row.seconds * 1e3,
                 total_tokens / row.seconds, total_bytes / 1e6 / row.seconds, row.seconds / reference_seconds);
    }
    fmt::print("\nlong words: {} words, {:.0f} bytes on average, {} tokens (BPE only, no cache)\n", long_words.size(),
               static_cast<double>(long_bytes) / long_words.size(), long_tokens);
    fmt::print("{:<36} {:>10} {:>12} {:>9} {:>14}\n", "algorithm", "ms/pass", "tokens/s", "MB/s", "time vs naive");
    for (const auto& row : long_rows) {
      fmt::print("{:<36} {:>10.2f} {:>12.3e} {:>9.1f} {:>13.2f}x\n", row.stage, row.seconds * 1e3,
                 long_tokens / row.seconds, long_bytes / 1e6 / row.seconds, row.seconds / long_rows[0].seconds);
    }
    if (sink == 0) fmt::print("(no output)\n");
    return 0;
  } catch (const std::exception& error) {
    fmt::print(stderr, "bench_tokenizer: {}\n", error.what());
    return 1;
  }
}
