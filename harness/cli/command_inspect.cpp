// `inspect`, `tokenize`, `detokenize`, `render-chat`: look inside a checkpoint
// and its tokenizer and chat template. JSON on stdout; tests and users rely on it.
#include <fmt/format.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "harness/cli/command_model_common.hpp"
#include "harness/cli/commands.hpp"
#include "runtime/runtime.hpp"

namespace quanteval::harness {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

void add_model_option(Args& args) {
  args.option("model", "DIR|OWNER/NAME[@REV]",
              "checkpoint folder, or a Hugging Face Hub id (downloaded once into the cache)");
}

fs::path model_dir(const Args& args) { return runtime::hub::resolve(args.get("model")).directory; }

std::string read_file_argument(const std::string& path, const char* option) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(fmt::format("--{}: cannot read {}", option, path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string read_text_argument(const Args& args, const char* inline_name, const char* file_name) {
  if (auto text = args.maybe(inline_name)) return *text;
  if (auto file = args.maybe(file_name)) return read_file_argument(*file, file_name);
  throw UsageError(fmt::format("give --{} TEXT or --{} FILE", inline_name, file_name));
}

// A JSON option given as a file path, or inline when it starts with '[' or '{'.
nlohmann::ordered_json json_argument(const std::string& value, const char* option) {
  const bool inline_json =
      value.find_first_not_of(" \t\n") != std::string::npos &&
      (value[value.find_first_not_of(" \t\n")] == '[' || value[value.find_first_not_of(" \t\n")] == '{');
  const std::string text = inline_json ? value : read_file_argument(value, option);
  try {
    return nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw UsageError(fmt::format("--{}: {}: invalid JSON: {}", option, inline_json ? "inline value" : value, e.what()));
  }
}

}  // namespace

int command_inspect(int argc, char** argv, int first) {
  Args args("quanteval inspect --model DIR [--json] [--load [--threads N]]",
            "Architecture, quantization, parameter count, bits per weight and size on disk of a checkpoint;\n"
            "every tensor is checked against the architecture's table. With --load the model is also loaded\n"
            "into the runtime's kernels: load time, the bytes of the loaded weights and the peak resident memory\n"
            "of the process (what a machine needs to hold this model).");
  add_model_option(args);
  args.flag("json", "print JSON instead of text")
      .flag("load", "load the weights into the runtime and report load time and peak resident memory")
      .option("threads", "N", "CPU threads for --load (0 = all cores)", "0");
  if (!args.parse(argc, argv, first)) return 0;
  const auto resolved = runtime::hub::resolve(args.get("model"));
  const auto checkpoint = runtime::Checkpoint::open(resolved.directory);
  const auto report = checkpoint.check();
  const auto summary = checkpoint.summary();
  const auto& c = checkpoint.config();
  ordered_json j;
  j["model"] = args.get("model");
  j["directory"] = resolved.directory.string();
  if (!resolved.commit.empty()) j["commit"] = resolved.commit;
  j["architecture"] = std::string(runtime::architecture_name(c.architecture));
  j["model_type"] = c.model_type;
  j["layers"] = c.num_hidden_layers;
  j["linear_attention_layers"] = c.num_linear_attention_layers();
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["attention_heads"] = c.num_attention_heads;
  j["kv_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  ordered_json layer_types = ordered_json::array();
  for (auto kind : c.layer_types) layer_types.push_back(std::string(runtime::layer_kind_name(kind)));
  j["layer_types"] = layer_types;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["quantization"] =
      checkpoint.quant_config() ? checkpoint.quant_config()->describe() : std::string("none (") + c.torch_dtype + ")";
  j["parameters"] = summary.parameter_count;
  j["quantized_parameters"] = summary.quantized_parameter_count;
  j["quantized_modules"] = summary.quantized_module_count;
  j["bits_per_weight"] = summary.bits_per_weight;
  j["quantized_bits_per_weight"] = summary.quantized_bits_per_weight;
  j["tensor_bytes"] = summary.tensor_bytes;
  j["size_on_disk_bytes"] = summary.size_on_disk;
  j["shards"] = summary.shard_count;
  j["ignored_tensors"] = summary.ignored_tensor_count;
  j["tensor_check"] = report.ok() ? "ok" : "failed";
  j["tensor_errors"] = report.errors;
  j["unexpected_tensors"] = report.unexpected_tensors;
  j["devices"] = runtime::describe_devices();
  if (args.is_set("load") && report.ok()) {
    const auto start = std::chrono::steady_clock::now();
    runtime::LoadOptions options;
    options.threads = args.get_int("threads", 0, 1024);
    const auto model = runtime::Model::load(resolved.directory, options);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    j["load"] = {{"seconds", seconds},
                 {"loaded_weight_bytes", model->resident_weight_bytes()},
                 {"peak_resident_bytes", runtime::peak_resident_bytes()},
                 {"resident_bytes_after_load", runtime::resident_bytes()}};
  }
  if (args.is_set("json")) {
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print(
        "{} ({}), {} layers{}, hidden {}, vocab {}\n", j["architecture"].get<std::string>(), c.model_type,
        c.num_hidden_layers,
        c.num_linear_attention_layers() ? fmt::format(" ({} linear attention)", c.num_linear_attention_layers()) : "",
        c.hidden_size, c.vocab_size);
    fmt::print("quantization: {}\n", j["quantization"].get<std::string>());
    fmt::print("parameters: {:.3f} B ({} quantized modules)\n", summary.parameter_count / 1e9,
               summary.quantized_module_count);
    fmt::print("bits per weight: {:.3f} overall, {:.3f} in quantized modules\n", summary.bits_per_weight,
               summary.quantized_bits_per_weight);
    fmt::print("size on disk: {:.3f} GB in {} file(s)\n", summary.size_on_disk / 1e9, summary.shard_count);
    fmt::print("tensor check: {}\n", report.ok() ? "ok" : "FAILED");
    for (const auto& e : report.errors) fmt::print("  {}\n", e);
    if (j.contains("load")) {
      const auto& load = j["load"];
      fmt::print("loaded in {:.1f} s: weights {:.3f} GB in memory, peak resident {:.3f} GB\n",
                 load["seconds"].get<double>(), load["loaded_weight_bytes"].get<std::uint64_t>() / 1e9,
                 load["peak_resident_bytes"].get<std::uint64_t>() / 1e9);
    }
  }
  return report.ok() ? 0 : 2;
}

int command_tokenize(int argc, char** argv, int first) {
  Args args("quanteval tokenize --model DIR (--text S | --text-file F)",
            "Token ids of a text with the model's tokenizer (special-token text is recognised, no BOS added).\n"
            "Prints {\"ids\": [...], \"tokens\": [...]}.");
  add_model_option(args);
  args.option("text", "S", "text to tokenize")
      .option("text-file", "F", "read the text from a file (bytes as they are)");
  if (!args.parse(argc, argv, first)) return 0;
  const auto tokenizer = runtime::Tokenizer::from_file(model_dir(args));
  const auto ids = tokenizer.encode(read_text_argument(args, "text", "text-file"));
  ordered_json j;
  j["ids"] = ids;
  ordered_json tokens = ordered_json::array();
  for (auto id : ids) tokens.push_back(tokenizer.id_to_token(id));
  j["tokens"] = tokens;
  fmt::print("{}\n", j.dump());
  return 0;
}

int command_detokenize(int argc, char** argv, int first) {
  Args args("quanteval detokenize --model DIR --ids 1,2,3 [--skip-special]",
            "Text of a token id sequence. Prints {\"text\": ...}.");
  add_model_option(args);
  args.option("ids", "1,2,3", "comma-separated token ids").flag("skip-special", "drop special tokens");
  if (!args.parse(argc, argv, first)) return 0;
  const auto tokenizer = runtime::Tokenizer::from_file(model_dir(args));
  const auto ids = parse_token_ids(args.get("ids"));
  ordered_json j;
  j["text"] = tokenizer.decode(ids, args.is_set("skip-special"));
  fmt::print("{}\n", j.dump());
  return 0;
}

int command_render_chat(int argc, char** argv, int first) {
  Args args("quanteval render-chat --model DIR --messages F.json [--tools F.json] [options]",
            "Renders a conversation with the model's chat template exactly as transformers' apply_chat_template.\n"
            "Prints {\"text\": ..., \"ids\": [...]}.");
  add_model_option(args);
  args.option("messages", "F.json", "file with the messages array (or the array inline: '[{\"role\":\"user\",...}]')")
      .option("tools", "F.json", "file with the tool schemas array (or inline JSON)")
      .option("enable-thinking", "true|false", "the template's enable_thinking variable (unset when not given)")
      .flag("no-generation-prompt", "do not add the assistant turn opener");
  if (!args.parse(argc, argv, first)) return 0;
  const fs::path dir = model_dir(args);
  const ordered_json messages = json_argument(args.get("messages"), "messages");
  if (!messages.is_array()) throw UsageError("--messages: expected a JSON array of {role, content} objects");
  runtime::ChatOptions options;
  options.add_generation_prompt = !args.is_set("no-generation-prompt");
  if (auto t = args.maybe("enable-thinking")) {
    if (*t != "true" && *t != "false") throw UsageError("--enable-thinking: expected true or false");
    options.enable_thinking = *t == "true";
  }
  if (auto tools = args.maybe("tools")) options.tools = json_argument(*tools, "tools");
  const auto chat = runtime::ChatTemplate::from_model_dir(dir);
  ordered_json j;
  j["text"] = chat.render_chat(messages, options);
  if (fs::exists(dir / "tokenizer.json"))
    j["ids"] = runtime::Tokenizer::from_file(dir).encode(j["text"].get<std::string>());
  fmt::print("{}\n", j.dump());
  return 0;
}

}  // namespace quanteval::harness
