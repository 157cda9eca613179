#include "runtime/text/chat_template.hpp"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "runtime/text/jinja/parser.hpp"
#include "runtime/text/jinja/render.hpp"

namespace quanteval::runtime {

namespace {

std::string read_text_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ChatTemplateError(ChatTemplateError::Kind::missing, fmt::format("cannot read {}", path.string()));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

nlohmann::ordered_json read_json_file(const std::filesystem::path& path) {
  try {
    return nlohmann::ordered_json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& error) {
    throw ChatTemplateError(ChatTemplateError::Kind::missing,
                            fmt::format("{}: invalid JSON: {}", path.string(), error.what()));
  }
}

// Special tokens as transformers' special_tokens_map exposes them to templates:
// plain strings (AddedToken objects reduced to their content), unset ones absent.
nlohmann::ordered_json special_tokens_of(const nlohmann::ordered_json& tokenizer_config) {
  nlohmann::ordered_json tokens = nlohmann::ordered_json::object();
  const auto as_text = [](const nlohmann::ordered_json& token) -> nlohmann::ordered_json {
    if (token.is_string()) return token;
    if (token.is_object() && token.contains("content") && token["content"].is_string()) return token["content"];
    return nullptr;
  };
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
    if (!tokenizer_config.contains(key)) continue;
    auto text = as_text(tokenizer_config[key]);
    if (text.is_string() && !text.get<std::string>().empty()) tokens[key] = text;
  }
  if (tokenizer_config.contains("additional_special_tokens") &&
      tokenizer_config["additional_special_tokens"].is_array()) {
    nlohmann::ordered_json extra = nlohmann::ordered_json::array();
    for (const auto& token : tokenizer_config["additional_special_tokens"]) {
      auto text = as_text(token);
      if (text.is_string()) extra.push_back(text);
    }
    if (!extra.empty()) tokens["additional_special_tokens"] = extra;
  }
  return tokens;
}

// tokenizer_config.json / chat_template.json: "chat_template" is a string or a
// list of {"name", "template"}.
std::optional<std::string> pick_template(const nlohmann::ordered_json& config, std::string_view name,
                                         const std::filesystem::path& file) {
  if (!config.contains("chat_template") || config["chat_template"].is_null()) return std::nullopt;
  const auto& entry = config["chat_template"];
  if (entry.is_string()) return entry.get<std::string>();
  if (entry.is_array()) {
    std::string available;
    for (const auto& named : entry) {
      if (!named.is_object() || !named.contains("name") || !named.contains("template")) continue;
      const std::string template_name = named["name"].get<std::string>();
      if (template_name == name) return named["template"].get<std::string>();
      available += (available.empty() ? "" : ", ") + template_name;
    }
    throw ChatTemplateError(
        ChatTemplateError::Kind::missing,
        fmt::format("{} has no chat template named '{}' (available: {})", file.string(), name, available));
  }
  throw ChatTemplateError(
      ChatTemplateError::Kind::missing,
      fmt::format("{}: \"chat_template\" is neither a string nor a list of named templates", file.string()));
}

}  // namespace

ChatTemplateSource load_chat_template_source(const std::filesystem::path& model_dir, std::string_view name) {
  ChatTemplateSource result;
  const auto tokenizer_config_path = model_dir / "tokenizer_config.json";
  nlohmann::ordered_json tokenizer_config = nlohmann::ordered_json::object();
  if (std::filesystem::exists(tokenizer_config_path)) {
    tokenizer_config = read_json_file(tokenizer_config_path);
    result.special_tokens = special_tokens_of(tokenizer_config);
  }

  // Newer checkpoints keep the template beside the config; transformers prefers it.
  const auto jinja_path = model_dir / "chat_template.jinja";
  if (name == "default" && std::filesystem::exists(jinja_path)) {
    result.source = read_text_file(jinja_path);
    result.origin = jinja_path;
    return result;
  }
  const auto json_path = model_dir / "chat_template.json";
  if (std::filesystem::exists(json_path)) {
    if (auto source = pick_template(read_json_file(json_path), name, json_path)) {
      result.source = *source;
      result.origin = json_path;
      return result;
    }
  }
  if (auto source = pick_template(tokenizer_config, name, tokenizer_config_path)) {
    result.source = *source;
    result.origin = tokenizer_config_path;
    return result;
  }
  throw ChatTemplateError(ChatTemplateError::Kind::missing,
                          fmt::format("no chat template in {}: looked for chat_template.jinja, chat_template.json and "
                                      "\"chat_template\" in tokenizer_config.json",
                                      model_dir.string()));
}

ChatTemplate::ChatTemplate(std::string_view source, nlohmann::ordered_json default_variables)
    : source_(source), default_variables_(std::move(default_variables)) {
  if (!default_variables_.is_object()) {
    throw std::invalid_argument("ChatTemplate: default variables must be a JSON object");
  }
  try {
    root_ = jinja::parse_template(source_);
  } catch (const jinja::SyntaxError& error) {
    throw ChatTemplateSyntaxError(fmt::format("chat template {}", error.what()), error.line, error.column);
  }
}

ChatTemplate ChatTemplate::from_model_dir(const std::filesystem::path& model_dir, std::string_view name) {
  auto located = load_chat_template_source(model_dir, name);
  try {
    return ChatTemplate(located.source, std::move(located.special_tokens));
  } catch (const ChatTemplateSyntaxError& error) {
    throw ChatTemplateSyntaxError(fmt::format("{}: {}", located.origin.string(), error.what()), error.line(),
                                  error.column());
  }
}

std::string ChatTemplate::render(const nlohmann::ordered_json& context) const {
  if (!context.is_object() && !context.is_null()) {
    throw std::invalid_argument("ChatTemplate::render: the context must be a JSON object");
  }
  auto builtins = std::make_shared<jinja::Scope>();
  jinja::install_builtin_globals(*builtins);
  auto variables = std::make_shared<jinja::Scope>(builtins);
  for (const auto& [key, value] : default_variables_.items()) variables->variables[key] = jinja::from_json(value);
  if (context.is_object()) {
    for (const auto& [key, value] : context.items()) variables->variables[key] = jinja::from_json(value);
  }
  try {
    jinja::Renderer renderer(variables);
    return renderer.render(*root_);
  } catch (const jinja::RaisedByTemplate& raised) {
    throw ChatTemplateError(ChatTemplateError::Kind::raised, raised.what());
  } catch (const jinja::RenderError& error) {
    throw ChatTemplateError(ChatTemplateError::Kind::evaluation,
                            fmt::format("chat template error at {}", error.what()));
  } catch (const jinja::EvalError& error) {
    throw ChatTemplateError(ChatTemplateError::Kind::evaluation, fmt::format("chat template error: {}", error.what()));
  }
}

std::string ChatTemplate::render_chat(const nlohmann::ordered_json& messages, const ChatOptions& options) const {
  nlohmann::ordered_json context = nlohmann::ordered_json::object();
  if (!options.extra_variables.is_null() && !options.extra_variables.is_object()) {
    throw std::invalid_argument("ChatOptions::extra_variables must be a JSON object");
  }
  context["documents"] = nullptr;
  if (options.extra_variables.is_object()) {
    for (const auto& [key, value] : options.extra_variables.items()) context[key] = value;
  }
  context["messages"] = messages;
  context["tools"] = options.tools;
  context["add_generation_prompt"] = options.add_generation_prompt;
  if (options.enable_thinking) context["enable_thinking"] = *options.enable_thinking;
  return render(context);
}

}  // namespace quanteval::runtime
