// Renders compare.html in headless Chromium and checks that a real image came
// out. Needs the Debian package `chromium`; without it the test exits 77 and
// ctest reports it as "not run".
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "tests/compare/run_fixtures.hpp"
#include "tests/support/test_data.hpp"

using quanteval::test::run_quanteval;
using quanteval::test::TempDir;
using quanteval::test::write_run;
namespace fs = std::filesystem;

namespace {

std::optional<fs::path> find_chromium() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin";
  for (std::size_t start = 0; start <= dirs.size();) {
    const std::size_t end = std::min(dirs.find(':', start), dirs.size());
    for (const char* name : {"chromium", "chromium-browser"}) {
      const fs::path candidate = fs::path(dirs.substr(start, end - start)) / name;
      if (!candidate.parent_path().empty() && fs::exists(candidate)) return candidate;
    }
    start = end + 1;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("compare.html renders in headless Chromium") {
  const auto chromium = find_chromium();
  if (!chromium) {
    std::puts("chromium not found on PATH (Debian: apt-get install -y chromium); skipping");
    std::exit(77);  // ctest: SKIP_RETURN_CODE 77 -> "not run"
  }
  TempDir dir;
  auto base = [](const std::string& mode, int task, int) { return mode == "thinking" ? task % 9 != 0 : task % 2 == 0; };
  auto quant = [&](const std::string& mode, int task, int s) {
    return task % 13 == 5 ? false : task % 29 == 3 || base(mode, task, s);
  };
  write_run(dir.path() / "a", {.passes = quant, .report = {{"model", {{"id", "int4"}, {"size_bytes", 16.5e9}}}}});
  write_run(dir.path() / "b", {.passes = base, .report = {{"model", {{"id", "bf16"}, {"size_bytes", 54e9}}}}});
  const fs::path out = dir.path() / "out";
  const auto r =
      run_quanteval({"compare", (dir.path() / "a").string(), (dir.path() / "b").string(), "--out", out.string()});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);

  const fs::path screenshot = dir.path() / "page.png";
  // Flags: no sandbox (tests may run as root), nothing that reaches the network,
  // a fresh profile so no state leaks between runs.
  const std::string command = fmt::format(
      "'{}' --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking "
      "--disable-component-update --disable-sync --user-data-dir='{}' --screenshot='{}' --window-size=1200,1600 "
      "'file://{}' >'{}' 2>&1",
      chromium->string(), (dir.path() / "profile").string(), screenshot.string(), (out / "compare.html").string(),
      (dir.path() / "chromium.log").string());
  const int status = std::system(command.c_str());
  std::ifstream log(dir.path() / "chromium.log");
  INFO("chromium output: ", std::string(std::istreambuf_iterator<char>(log), {}));
  CHECK(status == 0);
  REQUIRE(fs::exists(screenshot));
  // A blank 1200x1600 page compresses to a few KB; tables, bars and a
  // 164-cell grid come out well above 40 KB.
  CHECK(fs::file_size(screenshot) > 40 * 1024);
  std::ifstream png(screenshot, std::ios::binary);
  char signature[8] = {};
  png.read(signature, 8);
  CHECK(std::string(signature, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
}
