#include <fmt/format.h>

#include <fstream>
#include <stdexcept>

#include "harness/common/files.hpp"
#include "harness/divergence/divergence.hpp"

namespace quanteval::harness {

void write_divergence_association(const reports::Comparison& comparison, const std::filesystem::path& divergence,
                                  const std::filesystem::path& out) {
  const std::filesystem::path file =
      std::filesystem::is_directory(divergence) ? divergence / "divergence.json" : divergence;
  std::ifstream in(file);
  if (!in) throw std::runtime_error(fmt::format("--divergence: cannot read {}", file.string()));
  nlohmann::json report;
  try {
    report = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(fmt::format("--divergence: {}: {}", file.string(), e.what()));
  }
  if (!report.contains("sources") || !report.at("sources").is_array())
    throw std::runtime_error(fmt::format("--divergence: {} is not a `quanteval divergence` report", file.string()));
  std::vector<reports::DivergenceAssociation> associations;
  try {
    associations = reports::associate_divergence(comparison, report);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(fmt::format("--divergence: {}: {}", file.string(), e.what()));
  }
  write_file_atomically(out / "divergence_association.md", reports::divergence_association_markdown(associations));
  write_file_atomically(out / "divergence_association.json", reports::to_json(associations).dump(2) + "\n");
  for (const auto& a : associations)
    if (a.tested)
      fmt::print("{} {}: mean KL regressed {:.5f} ({} tasks) vs unchanged {:.5f} ({}); Mann-Whitney p = {:.4g}\n",
                 a.contender, a.mode, a.regressed.mean, a.regressed.tasks.size(), a.unchanged.mean,
                 a.unchanged.tasks.size(), a.test.p_value);
  fmt::print("wrote {}/divergence_association.md, divergence_association.json\n", out.string());
}

}  // namespace quanteval::harness
