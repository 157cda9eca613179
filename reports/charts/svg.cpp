#include "reports/charts/svg.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>

namespace quanteval::reports::svg {

namespace {

constexpr const char* kFont = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif\"";
constexpr const char* kAxisColour = "#333333";
constexpr const char* kGridColour = "#DDDDDD";

// A per-document unique id would need global state; titles are unique within
// one report, so an id derived from the title suffices for aria-labelledby.
std::string id_from(const std::string& title) {
  std::string id = "chart-";
  for (char ch : title) id += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '-';
  return id;
}

std::string open_svg(double width, double height, const std::string& title, const std::string& description) {
  const std::string id = id_from(title);
  return fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" "
      "aria-labelledby=\"{id}-title {id}-desc\" {font}>\n<title id=\"{id}-title\">{title}</title>\n"
      "<desc id=\"{id}-desc\">{desc}</desc>\n<rect width=\"{w}\" height=\"{h}\" fill=\"#FFFFFF\"/>\n"
      "<text x=\"{cx}\" y=\"22\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"600\" "
      "fill=\"#111111\">{title}</text>\n",
      fmt::arg("w", width), fmt::arg("h", height), fmt::arg("id", id), fmt::arg("font", kFont),
      fmt::arg("title", escape(title)), fmt::arg("desc", escape(description)), fmt::arg("cx", width / 2));
}

// Legend swatches from (x, y), wrapping at max_width; returns the SVG and
// sets `bottom` to the baseline of its last row, so the chart below can start clear of it.
std::string legend(double x, double y, const std::vector<std::pair<std::string, std::string>>& entries,
                   double max_width, double* bottom = nullptr) {
  std::string out;
  double cursor = x, row_y = y;
  for (const auto& [name, colour] : entries) {
    // ~7 px per character at 13 px: enough to keep entries from overlapping.
    const double width = 24 + 7.0 * static_cast<double>(name.size()) + 18;
    if (cursor + width > x + max_width && cursor > x) {
      cursor = x;
      row_y += 20;
    }
    out += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"14\" height=\"14\" fill=\"{}\" stroke=\"#333333\" "
        "stroke-width=\"0.5\"/><text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"13\" fill=\"#111111\">{}</text>\n",
        cursor, row_y - 11, colour, cursor + 20, row_y, escape(name));
    cursor += width;
  }
  if (bottom) *bottom = row_y;
  return out;
}

// Tick step from {1, 2, 5} x 10^k giving at most ~6 ticks up to `maximum`.
double nice_step(double maximum) {
  if (!(maximum > 0)) return 1.0;
  const double rough = maximum / 5.0;
  const double magnitude = std::pow(10.0, std::floor(std::log10(rough)));
  for (double factor : {1.0, 2.0, 5.0, 10.0})
    if (factor * magnitude >= rough) return factor * magnitude;
  return 10.0 * magnitude;
}

std::string format_tick(double value) {
  return std::fabs(value - std::round(value)) < 1e-9 ? fmt::format("{:.0f}", value) : fmt::format("{:g}", value);
}

// The plotting area of a chart whose y axis is a fraction shown in percent.
struct PercentPlot {
  double left, top, width, height;
  double y_of(double fraction) const { return top + height * (1.0 - std::clamp(fraction, 0.0, 1.0)); }
};

// How both charts with a percent axis begin: the <svg> opening, a legend entry
// per series and a gridline with its label every 20%.
template <typename Series>
std::string open_percent_chart(double width, double height, const PercentPlot& plot, const std::string& title,
                               const std::string& description, const std::vector<Series>& series) {
  std::string out = open_svg(width, height, title, description);
  std::vector<std::pair<std::string, std::string>> entries;
  for (const auto& s : series) entries.emplace_back(s.name, s.colour);
  out += legend(plot.left, 48, entries, plot.width);
  for (int percent = 0; percent <= 100; percent += 20) {
    const double y = plot.y_of(percent / 100.0);
    out += fmt::format(
        "<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\"/>"
        "<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\" font-size=\"12\" fill=\"{}\">{}%</text>\n",
        plot.left, plot.left + plot.width, y, y, percent == 0 ? kAxisColour : kGridColour, plot.left - 6, y + 4,
        kAxisColour, percent);
  }
  return out;
}

}  // namespace

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::string interval_bar_chart(const std::string& title, const std::string& description,
                               const std::vector<std::string>& categories, const std::vector<BarSeries>& series) {
  const double width = 760, height = 400;
  const double left = 64, right = 20, top = 64, bottom = 56;
  const double plot_width = width - left - right, plot_height = height - top - bottom;
  const PercentPlot plot{left, top, plot_width, plot_height};
  auto y_of = [&](double fraction) { return plot.y_of(fraction); };

  std::string out = open_percent_chart(width, height, plot, title, description, series);
  out += fmt::format(
      "<text transform=\"translate(16 {:.1f}) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\" "
      "fill=\"{}\">pass@1 (%), whiskers: 95% interval</text>\n",
      top + plot_height / 2, kAxisColour);

  const double group_width = plot_width / static_cast<double>(std::max<std::size_t>(1, categories.size()));
  const double bar_width =
      std::min(64.0, group_width * 0.8 / static_cast<double>(std::max<std::size_t>(1, series.size())));
  for (std::size_t c = 0; c < categories.size(); ++c) {
    const double group_left = left + group_width * static_cast<double>(c);
    const double bars_left = group_left + (group_width - bar_width * static_cast<double>(series.size())) / 2;
    out += fmt::format(
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"14\" fill=\"#111111\">{}</text>\n",
        group_left + group_width / 2, top + plot_height + 22, escape(categories[c]));
    for (std::size_t s = 0; s < series.size(); ++s) {
      if (c >= series[s].values.size() || !series[s].values[c]) continue;
      const IntervalBar& bar = *series[s].values[c];
      const double x = bars_left + bar_width * static_cast<double>(s);
      const double y = y_of(bar.value);
      out += fmt::format(
          "<g><title>{}, {}: {:.2f}%{}</title>", escape(series[s].name), escape(categories[c]), 100 * bar.value,
          bar.low && bar.high ? fmt::format(" (95% interval {:.2f}–{:.2f}%)", 100 * *bar.low, 100 * *bar.high)
                              : std::string(" (no interval)"));
      out += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"/>", x + 2, y,
                         bar_width - 4, top + plot_height - y, series[s].colour);
      double label_y = y - 6;
      if (bar.low && bar.high) {
        const double centre = x + bar_width / 2, y_low = y_of(*bar.low), y_high = y_of(*bar.high);
        out += fmt::format(
            "<path d=\"M{c:.1f} {lo:.1f}V{hi:.1f}M{l:.1f} {lo:.1f}H{r:.1f}M{l:.1f} {hi:.1f}H{r:.1f}\" "
            "stroke=\"#111111\" stroke-width=\"1.5\" fill=\"none\"/>",
            fmt::arg("c", centre), fmt::arg("lo", y_low), fmt::arg("hi", y_high), fmt::arg("l", centre - 6),
            fmt::arg("r", centre + 6));
        label_y = y_high - 6;
      }
      out += fmt::format(
          "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"12\" "
          "fill=\"#111111\">{:.1f}%</text></g>\n",
          x + bar_width / 2, std::max(top - 2, label_y), 100 * bar.value);
    }
  }
  out += "</svg>\n";
  return out;
}

std::string category_grid(const std::string& title, const std::string& description, const std::vector<GridCell>& cells,
                          const std::vector<GridCategory>& categories, std::size_t columns) {
  const double cell = 26, gap = 3, left = 16;
  columns = std::max<std::size_t>(1, columns);
  const std::size_t rows = (cells.size() + columns - 1) / columns;
  const double width = std::max(560.0, left * 2 + static_cast<double>(columns) * (cell + gap));

  std::vector<std::size_t> counts(categories.size(), 0);
  for (const auto& c : cells)
    if (c.category < counts.size()) ++counts[c.category];
  std::vector<std::pair<std::string, std::string>> entries;
  for (std::size_t i = 0; i < categories.size(); ++i) {
    const auto& category = categories[i];
    if (counts[i] == 0 && category.hide_when_empty) continue;
    entries.emplace_back(
        fmt::format("{}{} ({})", category.glyph.empty() ? "" : category.glyph + " ", category.name, counts[i]),
        category.fill);
  }
  double legend_bottom = 0;
  const std::string legend_svg = legend(left, 48, entries, width - 2 * left, &legend_bottom);
  const double top = legend_bottom + 14;
  const double height = top + static_cast<double>(rows) * (cell + gap) + 16;
  std::string out = open_svg(width, height, title, description) + legend_svg;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const GridCategory& category = categories.at(cells[i].category);
    const double x = left + static_cast<double>(i % columns) * (cell + gap);
    const double y = top + static_cast<double>(i / columns) * (cell + gap);
    out += fmt::format(
        "<g><title>{}</title><rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{}\" height=\"{}\" rx=\"3\" "
        "fill=\"{}\" stroke=\"#FFFFFF\"/>",
        escape(cells[i].tooltip), x, y, cell, cell, category.fill);
    if (!category.glyph.empty())
      out += fmt::format(
          "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"700\" "
          "fill=\"{}\">{}</text>",
          x + cell / 2, y + cell / 2 + 6, category.glyph_colour, escape(category.glyph));
    out += "</g>\n";
  }
  out += "</svg>\n";
  return out;
}

std::string scatter_chart(const std::string& title, const std::string& description, const std::string& x_label,
                          const std::string& y_label, const std::vector<ScatterSeries>& series) {
  const double width = 760, left = 64, right = 40, bottom = 56;
  const double plot_width = width - left - right;
  // The plot starts below the legend, however many rows it wraps to (curves come in pairs).
  std::vector<std::pair<std::string, std::string>> entries;
  for (const auto& s : series) entries.emplace_back(s.name, s.colour);
  double legend_bottom = 48;
  legend(left, 48, entries, plot_width, &legend_bottom);
  const double top = legend_bottom + 16, height = top + 300 + bottom;
  const double plot_height = height - top - bottom;
  double max_x = 0;
  for (const auto& s : series)
    for (const auto& p : s.points) max_x = std::max(max_x, p.x);
  const double step = nice_step(max_x * 1.1);
  const double x_end = std::max(step, std::ceil(max_x * 1.1 / step) * step);
  auto x_of = [&](double x) { return left + plot_width * x / x_end; };
  const PercentPlot plot{left, top, plot_width, plot_height};
  auto y_of = [&](double fraction) { return plot.y_of(fraction); };

  std::string out = open_percent_chart(width, height, plot, title, description, series);
  for (double tick = 0; tick <= x_end + step / 2; tick += step) {
    const double x = x_of(tick);
    out += fmt::format(
        "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"{}\" y2=\"{}\" stroke=\"{}\"/>"
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"12\" fill=\"{}\">{}</text>\n",
        x, x, top, top + plot_height, tick == 0 ? kAxisColour : kGridColour, x, top + plot_height + 18, kAxisColour,
        format_tick(tick));
  }
  out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"13\" fill=\"{}\">{}</text>\n",
                     left + plot_width / 2, height - 12, kAxisColour, escape(x_label));
  out += fmt::format(
      "<text transform=\"translate(16 {:.1f}) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\" "
      "fill=\"{}\">{}</text>\n",
      top + plot_height / 2, kAxisColour, escape(y_label));
  for (const ScatterSeries& s : series) {
    if (!s.connect || s.points.size() < 2) continue;
    std::string points;
    for (const auto& p : s.points) points += fmt::format("{:.1f},{:.1f} ", x_of(p.x), y_of(p.y));
    out += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{}/>\n", points, s.colour,
                       s.dash.empty() ? "" : fmt::format(" stroke-dasharray=\"{}\"", s.dash));
  }
  for (std::size_t index = 0; index < series.size(); ++index) {
    const ScatterSeries& s = series[index];
    for (std::size_t point = 0; point < s.points.size(); ++point) {
      const ScatterPoint& p = s.points[point];
      const double x = x_of(p.x), y = y_of(p.y);
      // A curve's value is printed at its last point only (every point has its tooltip).
      const bool label = !s.connect || point + 1 == s.points.size();
      // Labels sit left of points in the right third (so they stay inside the
      // chart), alternating above and below by series so runs of similar
      // size do not print over one another.
      const bool label_left = x > left + plot_width * 0.66;
      const double label_x = label_left ? x - 9 : x + 9;
      const double label_y = index % 2 == 0 ? y - 9 : y + 18;
      out += fmt::format("<g><title>{}: {}, {:.2f}% at {:g}</title>", escape(s.name), escape(p.label), 100 * p.y, p.x);
      if (p.y_low && p.y_high)
        out += fmt::format("<path d=\"M{:.1f} {:.1f}V{:.1f}\" stroke=\"{}\" stroke-width=\"1.5\"/>", x, y_of(*p.y_low),
                           y_of(*p.y_high), s.colour);
      out += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\" fill=\"{}\" stroke=\"#111111\"/>", x, y,
                         s.connect ? 4 : 6, s.colour);
      if (label)
        out += fmt::format(
            "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\" font-size=\"12\" fill=\"#111111\" "
            "stroke=\"#FFFFFF\" stroke-width=\"3\" paint-order=\"stroke\">{}{:.1f}%</text>",
            label_x, label_y, label_left ? "end" : "start", p.label.empty() ? "" : escape(p.label) + " ", 100 * p.y);
      out += "</g>\n";
    }
  }
  out += "</svg>\n";
  return out;
}

}  // namespace quanteval::reports::svg
