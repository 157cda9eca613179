// Prompt construction and code extraction for both modes.
#include <doctest/doctest.h>

#include "harness/extraction/extraction.hpp"

using namespace quanteval::harness;

TEST_CASE("standard mode cuts at the earliest lm-eval stop sequence") {
  CHECK(cut_at_stop_sequence("    return x\n\n\ndef other():\n    pass") == "    return x\n\n");
  CHECK(cut_at_stop_sequence("    return x\nif __name__ == '__main__':\n    main()") == "    return x");
  CHECK(cut_at_stop_sequence("    y = 1\n    # comment stays (indented)\n    return y\n# top-level comment") ==
        "    y = 1\n    # comment stays (indented)\n    return y");
  CHECK(cut_at_stop_sequence("    return 1\nprint(f(2))\nclass A: pass") == "    return 1");
  CHECK(cut_at_stop_sequence("    return 1\n") == "    return 1\n");
  CHECK(standard_stop_sequences().size() == 5);
}

TEST_CASE("thinking user message matches the reference instruction template") {
  // The template of the tokenizer reference: instruction, then the stripped prompt in a python fence.
  CHECK(thinking_user_message("\n\ndef f():\n    \"\"\"doc\"\"\"\n") ==
        "Please provide a self-contained Python script that solves the following problem in a markdown code block:\n"
        "```python\ndef f():\n    \"\"\"doc\"\"\"\n```");
}

TEST_CASE("thinking extraction: after the last </think>, last python fence wins") {
  const std::string raw =
      "<think>\nMaybe ```python\nwrong()\n``` hmm\n</think>\n\nHere:\n```python\ndef f():\n    return 1\n```\n"
      "And a test:\n```python\ndef f():\n    return 2\n```\nDone.";
  const auto e = extract_thinking_answer(raw);
  CHECK(e.rule == ExtractionRule::fenced_python);
  CHECK(e.code == "def f():\n    return 2\n");
  CHECK(e.thinking_closed);
  CHECK(e.answer.find("wrong()") == std::string::npos);
}

TEST_CASE("thinking extraction: generic fence, unclosed fence, sanitizer, nothing") {
  auto generic = extract_thinking_answer("</think>\n```\ndef g():\n    pass\n```\n");
  CHECK(generic.rule == ExtractionRule::fenced_generic);
  CHECK(generic.code == "def g():\n    pass\n");

  auto unclosed = extract_thinking_answer("<think>x</think>```python\ndef h():\n    return 3\n");
  CHECK(unclosed.rule == ExtractionRule::unclosed_fence);
  CHECK(unclosed.code == "def h():\n    return 3\n");

  auto sanitized = extract_thinking_answer(
      "</think>\nSure! The function is below.\n\nimport math\n\ndef k(x):\n    return math.sqrt(x)\n\nThis runs in "
      "O(1).\n");
  CHECK(sanitized.rule == ExtractionRule::sanitizer);
  CHECK(sanitized.code == "import math\n\ndef k(x):\n    return math.sqrt(x)\n");

  auto truncated = extract_thinking_answer("<think>\nstill thinking about ```python\ndef f(): pass\n```");
  CHECK_FALSE(truncated.thinking_closed);
  CHECK(truncated.rule == ExtractionRule::none);
  CHECK(truncated.code.empty());

  auto prose = extract_thinking_answer("</think>\nI cannot solve this.");
  CHECK(prose.rule == ExtractionRule::none);
}

TEST_CASE("prompt imports the code lacks are added, module-level only") {
  const std::string prompt = "from typing import List\nimport math\n\n\ndef f(xs: List[int]) -> int:\n    import os\n";
  CHECK(missing_prompt_imports(prompt, "def f(xs):\n    return 1\n") == "from typing import List\nimport math\n");
  CHECK(missing_prompt_imports(prompt, "import math\nfrom typing import List\ndef f(xs): pass\n") == "");
}

TEST_CASE("a prompt that opens <think> (Qwen3.5 template) leaves unclosed output truncated") {
  CHECK(prompt_opens_thinking("<|im_start|>assistant\n<think>\n"));
  CHECK_FALSE(prompt_opens_thinking("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
  CHECK_FALSE(prompt_opens_thinking("<|im_start|>assistant\n"));
  const std::string reasoning = "Let me write\ndef f():\n    return 1\nand check it";
  const auto open = extract_thinking_answer(reasoning, true);
  CHECK_FALSE(open.thinking_closed);
  CHECK(open.rule == ExtractionRule::none);
  const auto plain = extract_thinking_answer(reasoning, false);
  CHECK(plain.rule == ExtractionRule::sanitizer);
  const auto closed = extract_thinking_answer("plan</think>\n```python\ndef f():\n    return 2\n```", true);
  CHECK(closed.thinking_closed);
  CHECK(closed.code == "def f():\n    return 2\n");
}
