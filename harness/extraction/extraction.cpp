#include "harness/extraction/extraction.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "harness/common/enum_names.hpp"

namespace quanteval::harness {

std::string cut_at_stop_sequence(std::string_view completion) {
  std::size_t cut = completion.size();
  for (const auto& stop : standard_stop_sequences()) cut = std::min(cut, completion.find(stop));
  return std::string(completion.substr(0, cut));
}

namespace {

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto end = text.find('\n', start);
    if (end == std::string_view::npos) {
      lines.push_back(text.substr(start));
      break;
    }
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

bool starts_with_any(std::string_view line, std::initializer_list<std::string_view> prefixes) {
  for (auto p : prefixes)
    if (line.starts_with(p)) return true;
  return false;
}

struct Fence {
  std::string language;
  std::string body;
  bool closed = false;
};

// Markdown fences: a line starting with ``` opens (with an optional language
// word) and the next line starting with ``` closes.
std::vector<Fence> find_fences(std::string_view text) {
  std::vector<Fence> fences;
  bool inside = false;
  Fence current;
  for (auto raw : split_lines(text)) {
    std::string_view line = raw;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto stripped = line.substr(std::min(line.find_first_not_of(' '), line.size()));
    if (stripped.starts_with("```")) {
      if (!inside) {
        inside = true;
        current = {};
        current.language = std::string(trim(stripped.substr(3)));
        std::transform(current.language.begin(), current.language.end(), current.language.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      } else {
        current.closed = true;
        fences.push_back(current);
        inside = false;
      }
      continue;
    }
    if (inside) {
      current.body.append(line);
      current.body.push_back('\n');
    }
  }
  if (inside) {
    // The split yields one empty line after a final newline; do not keep it.
    while (current.body.ends_with("\n\n")) current.body.pop_back();
    fences.push_back(current);
  }
  return fences;
}

bool is_python_language(const std::string& language) {
  return language == "python" || language == "py" || language == "python3";
}

// `name = ...` or `name: type = ...` at column 0: code, not prose.
bool is_top_level_assignment(std::string_view line) {
  std::size_t i = 0;
  if (i >= line.size() || !(std::isalpha(static_cast<unsigned char>(line[i])) || line[i] == '_')) return false;
  while (i < line.size() && (std::isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_')) ++i;
  while (i < line.size() && line[i] == ' ') ++i;
  if (i < line.size() && line[i] == ':') return line.find('=', i) != std::string_view::npos;
  return i + 1 < line.size() && line[i] == '=' && line[i + 1] != '=';
}

// No fence: keep the lines from the first that starts Python code to the last
// line that is code (indented, or a top-level statement), dropping prose
// before and after.
std::string sanitize(std::string_view answer) {
  const auto lines = split_lines(answer);
  auto is_code_start = [](std::string_view l) {
    return starts_with_any(l, {"def ", "async def ", "import ", "from ", "class ", "@"});
  };
  auto is_code_line = [&](std::string_view l) {
    return l.empty() || l.starts_with(' ') || l.starts_with('\t') || is_code_start(l) ||
           starts_with_any(l, {"return", "if ", "for ", "while ", "try:", "except", "else:", "elif ", "with ", "#", ")",
                               "]", "}"}) ||
           is_top_level_assignment(l);
  };
  std::size_t first = lines.size();
  for (std::size_t i = 0; i < lines.size(); ++i)
    if (is_code_start(lines[i])) {
      first = i;
      break;
    }
  if (first == lines.size()) return {};
  std::size_t last = first;
  for (std::size_t i = first; i < lines.size(); ++i) {
    if (!is_code_line(lines[i])) break;
    if (!trim(lines[i]).empty()) last = i;
  }
  std::string code;
  for (std::size_t i = first; i <= last; ++i) {
    code.append(lines[i]);
    code.push_back('\n');
  }
  return code;
}

}  // namespace

namespace {
constexpr EnumName<ExtractionRule> kRuleNames[] = {{ExtractionRule::fenced_python, "fenced_python"},
                                                   {ExtractionRule::fenced_generic, "fenced_generic"},
                                                   {ExtractionRule::unclosed_fence, "unclosed_fence"},
                                                   {ExtractionRule::sanitizer, "sanitizer"},
                                                   {ExtractionRule::none, "none"},
                                                   {ExtractionRule::prompt_continuation, "prompt_continuation"}};
}  // namespace

const char* to_string(ExtractionRule rule) { return name_of(kRuleNames, rule).data(); }

std::optional<ExtractionRule> parse_extraction_rule(std::string_view name) { return value_named(kRuleNames, name); }

Extraction extract_thinking_answer(std::string_view raw, bool prompt_opens_thinking) {
  Extraction e;
  const auto close = raw.rfind("</think>");
  if (close != std::string_view::npos) {
    e.answer = std::string(raw.substr(close + 8));
  } else {
    // Opened and never closed: the budget ran out while thinking. Nothing after
    // it is an answer.
    e.thinking_closed = !prompt_opens_thinking && raw.find("<think>") == std::string_view::npos;
    e.answer = e.thinking_closed ? std::string(raw) : std::string();
  }
  const auto fences = find_fences(e.answer);
  const Fence* best = nullptr;
  for (const auto& f : fences)
    if (f.closed && is_python_language(f.language)) best = &f;
  if (best) {
    e.code = best->body;
    e.rule = ExtractionRule::fenced_python;
    return e;
  }
  for (const auto& f : fences)
    if (f.closed && f.language.empty()) best = &f;
  if (best) {
    e.code = best->body;
    e.rule = ExtractionRule::fenced_generic;
    return e;
  }
  if (!fences.empty() && !fences.back().closed && is_python_language(fences.back().language) &&
      !trim(fences.back().body).empty()) {
    e.code = fences.back().body;
    e.rule = ExtractionRule::unclosed_fence;
    return e;
  }
  e.code = sanitize(e.answer);
  e.rule = e.code.empty() ? ExtractionRule::none : ExtractionRule::sanitizer;
  return e;
}

std::string missing_prompt_imports(std::string_view prompt, std::string_view code) {
  std::string missing;
  const auto code_lines = split_lines(code);
  for (auto line : split_lines(prompt)) {
    const auto t = trim(line);
    if (!(t.starts_with("import ") || (t.starts_with("from ") && t.find(" import ") != std::string_view::npos)))
      continue;
    if (line.starts_with(' ') || line.starts_with('\t')) continue;  // only module-level imports
    const bool present =
        std::any_of(code_lines.begin(), code_lines.end(), [&](std::string_view c) { return trim(c) == t; });
    if (!present) {
      missing.append(t);
      missing.push_back('\n');
    }
  }
  return missing;
}

}  // namespace quanteval::harness
