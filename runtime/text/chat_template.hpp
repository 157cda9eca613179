#pragma once
// Chat templates: renders a Hugging Face chat template (the Jinja2 source in
// chat_template.jinja or tokenizer_config.json) byte-identically to
// transformers' `apply_chat_template`, with the runtime's own Jinja2-subset
// interpreter configured as transformers configures jinja2: trim_blocks,
// lstrip_blocks, loop controls, tojson with ensure_ascii=False, and the globals
// raise_exception, strftime_now, namespace, range, dict.
//
//   auto chat = ChatTemplate::from_model_dir("models/qwen3");
//   std::string prompt = chat.render_chat(messages, {.enable_thinking = false});
//
// Pass contexts and messages as nlohmann::ordered_json: key order reaches the
// output through tojson (tool schemas), and nlohmann::json sorts keys.
// Supported syntax and known gaps: docs/chat-templates.md.
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace quanteval::runtime {

namespace jinja {
struct SequenceStmt;
}

// Any failure to compile or render a chat template.
class ChatTemplateError : public std::runtime_error {
 public:
  enum class Kind {
    syntax,      // the template does not parse (ChatTemplateSyntaxError)
    raised,      // the template called raise_exception(msg): what() is msg, verbatim
    evaluation,  // evaluation failed (undefined attribute, type error...): what() names line and column
    missing,     // no template found for a model directory
  };
  ChatTemplateError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

class ChatTemplateSyntaxError : public ChatTemplateError {
 public:
  ChatTemplateSyntaxError(const std::string& message, int line, int column)
      : ChatTemplateError(Kind::syntax, message), line_(line), column_(column) {}
  int line() const { return line_; }
  int column() const { return column_; }

 private:
  int line_;
  int column_;
};

struct ChatOptions {
  bool add_generation_prompt = true;
  // Absent: the variable stays undefined, as when apply_chat_template gets no such kwarg.
  std::optional<bool> enable_thinking;
  // Tool schemas (a JSON array); null passes tools=None like transformers.
  nlohmann::ordered_json tools = nullptr;
  // Further template variables (documents, bos_token, custom kwargs); they
  // override the template's defaults and are overridden by the fields above.
  nlohmann::ordered_json extra_variables = nlohmann::ordered_json::object();
};

// A template located for a model directory.
struct ChatTemplateSource {
  std::string source;
  std::filesystem::path origin;  // the file it came from
  // bos_token, eos_token, pad_token, unk_token, ... from tokenizer_config.json
  // (only those that are set, as in transformers' special_tokens_map).
  nlohmann::ordered_json special_tokens = nlohmann::ordered_json::object();
};

// Finds a model directory's chat template: chat_template.jinja if present, else
// chat_template.json, else tokenizer_config.json's "chat_template" (a string, or a
// list of {name, template} from which `name` is picked). Throws ChatTemplateError
// (Kind::missing) naming what was searched when there is none.
ChatTemplateSource load_chat_template_source(const std::filesystem::path& model_dir, std::string_view name = "default");

class ChatTemplate {
 public:
  // Compiles once; throws ChatTemplateSyntaxError with line and column.
  // `default_variables` are present in every render (e.g. special tokens).
  explicit ChatTemplate(std::string_view source,
                        nlohmann::ordered_json default_variables = nlohmann::ordered_json::object());

  // The template of a model directory, with its special tokens as defaults.
  static ChatTemplate from_model_dir(const std::filesystem::path& model_dir, std::string_view name = "default");

  // Renders with `context` (a JSON object) as the template's variables, over
  // the defaults. Throws ChatTemplateError (Kind::raised or Kind::evaluation).
  std::string render(const nlohmann::ordered_json& context) const;

  // apply_chat_template(messages, tools=..., add_generation_prompt=..., enable_thinking=...,
  // tokenize=False): messages, tools and documents always defined (None when absent).
  std::string render_chat(const nlohmann::ordered_json& messages, const ChatOptions& options = {}) const;

  const std::string& source() const { return source_; }
  const nlohmann::ordered_json& default_variables() const { return default_variables_; }

 private:
  std::string source_;
  std::shared_ptr<const jinja::SequenceStmt> root_;
  nlohmann::ordered_json default_variables_;
};

}  // namespace quanteval::runtime
