#pragma once
// compare.html: one self-contained page (inline CSS and SVG, no scripts, no
// external resources) with the model-card table, pass@1 per mode with interval
// bars, a per-problem outcome grid per mode, quality against size when sizes
// are known, and the paired statistics in words.
#include <string>

#include "reports/comparison/comparison.hpp"

namespace quanteval::reports {

std::string comparison_html(const Comparison& comparison);

}  // namespace quanteval::reports
