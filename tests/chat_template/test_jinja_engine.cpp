#include <doctest/doctest.h>

#include "runtime/chat_template.hpp"

using quanteval::runtime::ChatTemplate;
using ordered_json = nlohmann::ordered_json;

static std::string render(const std::string& source, const ordered_json& context = ordered_json::object()) {
  return ChatTemplate(source).render(context);
}

TEST_CASE("smoke") { CHECK(render("a{{ 1 + 2 }}b") == "a3b"); }
