#pragma once
// Small inline-SVG charts for self-contained HTML reports: no scripts, no
// external fonts or styles. Each chart carries a <title>/<desc> pair and
// role="img" for screen readers, a legend, labelled axes, and never uses
// colour as the only signal (values are printed; grid cells carry glyphs).
// Values are fractions in [0, 1] unless stated.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace quanteval::reports::svg {

// Okabe & Ito's colour-blind-safe palette (2008), darkest first for contrast on white.
inline constexpr const char* kPalette[] = {"#D55E00", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"};
inline constexpr std::size_t kPaletteSize = sizeof(kPalette) / sizeof(kPalette[0]);

// Text escaped for XML/HTML content and attribute values.
std::string escape(std::string_view text);

struct IntervalBar {
  double value = 0.0;
  std::optional<double> low, high;  // absent: drawn without an interval bar
};

struct BarSeries {
  std::string name;
  std::string colour;
  std::vector<std::optional<IntervalBar>> values;  // one per category; absent: no bar
};

// Grouped bars (one group per category, one bar per series) on a 0–100% axis
// with interval whiskers.
std::string interval_bar_chart(const std::string& title, const std::string& description,
                               const std::vector<std::string>& categories, const std::vector<BarSeries>& series);

struct GridCategory {
  std::string name;
  std::string fill;
  std::string glyph;  // drawn in the cell; empty for none
  std::string glyph_colour = "#000000";
  bool hide_when_empty = false;  // leave out of the legend when no cell has it
};

struct GridCell {
  std::string tooltip;  // shown on hover (<title>): task id and outcome
  std::size_t category = 0;
};

// One square per cell, `columns` per row, in the given order, with a legend
// counting each category.
std::string category_grid(const std::string& title, const std::string& description, const std::vector<GridCell>& cells,
                          const std::vector<GridCategory>& categories, std::size_t columns = 24);

struct ScatterPoint {
  std::string label;  // written beside the point
  double x = 0.0;     // in x-axis units
  double y = 0.0;     // fraction
  std::optional<double> y_low, y_high;
};

struct ScatterSeries {
  std::string name;
  std::string colour;
  std::vector<ScatterPoint> points;
  bool connect = false;  // a line through the points in order (a curve, e.g. pass@1 by budget)
  std::string dash;      // stroke-dasharray of that line ("" solid), so curves differ without colour
};

// x from 0 to a rounded-up maximum (x_label names the unit, e.g. "size (GB)"); y 0–100%.
std::string scatter_chart(const std::string& title, const std::string& description, const std::string& x_label,
                          const std::string& y_label, const std::vector<ScatterSeries>& series);

}  // namespace quanteval::reports::svg
