#pragma once
// A line diff of two texts (the extracted code of a flipped task on both
// sides), from a longest common subsequence of lines: plain O(n·m) dynamic
// programming, fine for code of a few hundred lines.
#include <string>
#include <string_view>
#include <vector>

namespace quanteval::reports {

struct DiffLine {
  enum class Kind { same, removed, added } kind = Kind::same;  // removed: only in `before`; added: only in `after`
  std::string text;
};

// Lines of `before` and `after` in order; every line of each appears once,
// common ones (an LCS) as `same`. Texts longer than max_lines lines on either
// side are compared as whole blocks (all removed, then all added).
std::vector<DiffLine> line_diff(std::string_view before, std::string_view after, std::size_t max_lines = 2000);

}  // namespace quanteval::reports
