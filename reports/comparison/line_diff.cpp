#include "reports/comparison/line_diff.hpp"

namespace quanteval::reports {

namespace {

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) {
      lines.emplace_back(text.substr(start));
      break;
    }
    lines.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

}  // namespace

std::vector<DiffLine> line_diff(std::string_view before, std::string_view after, std::size_t max_lines) {
  const std::vector<std::string> a = split_lines(before), b = split_lines(after);
  std::vector<DiffLine> out;
  if (a.size() > max_lines || b.size() > max_lines) {
    for (const auto& line : a) out.push_back({DiffLine::Kind::removed, line});
    for (const auto& line : b) out.push_back({DiffLine::Kind::added, line});
    return out;
  }
  // lcs[i][j] = LCS length of a[i..] and b[j..], so the walk below goes forwards.
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<std::size_t>> lcs(n + 1, std::vector<std::size_t>(m + 1, 0));
  for (std::size_t i = n; i-- > 0;)
    for (std::size_t j = m; j-- > 0;)
      lcs[i][j] = a[i] == b[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
  std::size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] == b[j]) {
      out.push_back({DiffLine::Kind::same, a[i]});
      ++i, ++j;
    } else if (i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1])) {
      out.push_back({DiffLine::Kind::removed, a[i++]});  // removals before additions, as diff prints them
    } else {
      out.push_back({DiffLine::Kind::added, b[j++]});
    }
  }
  return out;
}

}  // namespace quanteval::reports
