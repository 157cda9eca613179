#include "datasets/datasets.hpp"

#include <curl/curl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

namespace quanteval::datasets {
namespace detail {
extern const char* const manifest_json;
}

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::vector<Manifest> parse_manifest() {
  std::vector<Manifest> out;
  const json doc = json::parse(detail::manifest_json);
  for (const auto& [name, entry] : doc.items()) {
    Manifest m;
    m.name = name;
    m.title = entry.at("title").get<std::string>();
    m.file = entry.at("file").get<std::string>();
    m.url = entry.at("url").get<std::string>();
    m.sha256 = entry.at("sha256").get<std::string>();
    m.license = entry.at("license").get<std::string>();
    m.problems = entry.at("problems").get<std::size_t>();
    m.default_timeout_seconds = entry.value("default_timeout_s", 3.0);
    if (const auto rule = entry.find("time_limit"); rule != entry.end()) {
      m.time_limit.calibrated = rule->value("calibrated", false);
      m.time_limit.factor = rule->value("factor", 4.0);
      m.time_limit.min_seconds = rule->value("min_s", 3.0);
    }
    m.requires_modules = entry.value("requires", std::vector<std::string>{});
    m.notes = entry.value("notes", std::vector<std::string>{});
    m.known_canonical_failures = entry.value("known_canonical_failures", std::vector<std::string>{});
    out.push_back(std::move(m));
  }
  return out;
}

std::string getenv_string(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::string(value) : std::string();
}

bool looks_like_path(const std::string& spec) {
  return spec.find('/') != std::string::npos || spec.ends_with(".gz") || spec.ends_with(".jsonl") || fs::exists(spec);
}

void verify_hash(const fs::path& file, const Manifest& manifest) {
  const std::string actual = sha256_file(file);
  if (actual != manifest.sha256)
    throw DatasetError(fmt::format(
        "{}: SHA-256 mismatch for {} (expected {}, got {}); the file is corrupt or not the official release. "
        "Delete it and fetch {} again",
        file.string(), manifest.title, manifest.sha256, actual, manifest.url));
}

std::string json_type_name(const json& value) { return value.is_null() ? "null" : value.type_name(); }

}  // namespace

const std::vector<Manifest>& manifests() {
  static const std::vector<Manifest> all = parse_manifest();  // immutable after first use
  return all;
}

const Manifest* find_manifest(std::string_view name) {
  for (const auto& m : manifests())
    if (m.name == name) return &m;
  return nullptr;
}

const Manifest* find_manifest_by_file(std::string_view file_name) {
  for (const auto& m : manifests())
    if (m.file == file_name) return &m;
  return nullptr;
}

const Problem* Dataset::find(std::string_view task_id) const {
  for (const auto& p : problems)
    if (p.task_id == task_id) return &p;
  return nullptr;
}

fs::path cache_dir() {
  if (auto dir = getenv_string("QUANTEVAL_CACHE_DIR"); !dir.empty()) return dir;
  if (auto xdg = getenv_string("XDG_CACHE_HOME"); !xdg.empty()) return fs::path(xdg) / "quanteval";
  if (auto home = getenv_string("HOME"); !home.empty()) return fs::path(home) / ".cache" / "quanteval";
  return fs::temp_directory_path() / "quanteval-cache";
}

fs::path locate(const std::string& spec_in) {
  std::string spec = spec_in;
  if (spec.empty()) spec = getenv_string("QUANTEVAL_DATASET");
  if (spec.empty()) spec = "humaneval";

  if (const Manifest* m = find_manifest(spec)) {
    const fs::path cached = cache_dir() / "datasets" / m->file;
    if (fs::exists(cached)) {
      verify_hash(cached, *m);
      return cached;
    }
    try {
      download(m->url, cached, m->sha256);
    } catch (const std::exception& e) {
      throw DatasetError(
          fmt::format("dataset '{}' is not available locally and could not be downloaded ({}).\n"
                      "Put the official {} (SHA-256 {}) at {} or pass --dataset PATH (or set QUANTEVAL_DATASET).",
                      m->name, e.what(), m->file, m->sha256, cached.string()));
    }
    return cached;
  }
  if (!looks_like_path(spec))
    throw DatasetError(
        fmt::format("--dataset: '{}' is neither a known dataset (humaneval, humaneval+) nor a file", spec));
  const fs::path file(spec);
  if (!fs::is_regular_file(file)) throw DatasetError(fmt::format("{}: dataset file not found", file.string()));
  if (const Manifest* m = find_manifest_by_file(file.filename().string())) verify_hash(file, *m);
  return file;
}

Dataset load(const std::string& spec) {
  Dataset dataset;
  dataset.path = locate(spec);
  dataset.sha256 = sha256_file(dataset.path);
  for (const auto& m : manifests())
    if (m.sha256 == dataset.sha256) {
      dataset.manifest = &m;
      dataset.name = m.name;
      dataset.verified = true;
    }
  if (!dataset.verified) dataset.name = "custom";
  dataset.problems = parse_problems(dataset.path);
  if (dataset.manifest && dataset.problems.size() != dataset.manifest->problems)
    throw DatasetError(fmt::format("{}: expected {} problems, read {}", dataset.path.string(),
                                   dataset.manifest->problems, dataset.problems.size()));
  return dataset;
}

std::string read_maybe_gzip(const fs::path& file) {
  gzFile gz = gzopen(file.c_str(), "rb");  // reads plain files transparently too
  if (!gz) throw DatasetError(fmt::format("{}: cannot open", file.string()));
  std::unique_ptr<gzFile_s, int (*)(gzFile)> guard(gz, gzclose);
  std::string out;
  char buffer[1 << 16];
  for (;;) {
    const int n = gzread(gz, buffer, sizeof buffer);
    if (n < 0) {
      int errnum = 0;
      throw DatasetError(fmt::format("{}: decompression failed: {}", file.string(), gzerror(gz, &errnum)));
    }
    if (n == 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  return out;
}

std::vector<Problem> parse_problems(const fs::path& file) {
  const std::string text = read_maybe_gzip(file);
  std::vector<Problem> problems;
  std::istringstream lines(text);
  std::string line;
  std::size_t line_number = 0;
  while (std::getline(lines, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json row;
    try {
      row = json::parse(line);
    } catch (const json::parse_error& e) {
      throw DatasetError(fmt::format("{}:{}: invalid JSON: {}", file.string(), line_number, e.what()));
    }
    if (!row.is_object()) throw DatasetError(fmt::format("{}:{}: expected a JSON object", file.string(), line_number));
    Problem p;
    auto field = [&](const char* name, std::string& target) {
      auto it = row.find(name);
      if (it == row.end())
        throw DatasetError(fmt::format("{}:{}: field '{}' is missing", file.string(), line_number, name));
      if (!it->is_string())
        throw DatasetError(fmt::format("{}:{}: field '{}' must be a string, got {}", file.string(), line_number, name,
                                       json_type_name(*it)));
      target = it->get<std::string>();
    };
    field("task_id", p.task_id);
    field("prompt", p.prompt);
    field("canonical_solution", p.canonical_solution);
    field("test", p.test);
    field("entry_point", p.entry_point);
    for (const auto& existing : problems)
      if (existing.task_id == p.task_id)
        throw DatasetError(
            fmt::format("{}:{}: field 'task_id': duplicate '{}'", file.string(), line_number, p.task_id));
    problems.push_back(std::move(p));
  }
  if (problems.empty()) throw DatasetError(fmt::format("{}: no problems in file", file.string()));
  return problems;
}

namespace {

// Lower-case hex of a finished digest.
std::string hex_digest(EVP_MD_CTX* ctx) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx, digest, &length);
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

using DigestContext = std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)>;

DigestContext sha256_context() {
  DigestContext ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  return ctx;
}

}  // namespace

std::string sha256_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw DatasetError(fmt::format("{}: cannot open", file.string()));
  const DigestContext ctx = sha256_context();
  std::vector<char> buffer(1 << 16);
  while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0)
    EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<std::size_t>(in.gcount()));
  return hex_digest(ctx.get());
}

std::string sha256_hex(std::string_view bytes) {
  const DigestContext ctx = sha256_context();
  EVP_DigestUpdate(ctx.get(), bytes.data(), bytes.size());
  return hex_digest(ctx.get());
}

void download(const std::string& url, const fs::path& dest, const std::string& expected_sha256) {
  fs::create_directories(dest.parent_path());
  const fs::path partial = dest.string() + fmt::format(".part-{}", ::getpid());
  std::FILE* out = std::fopen(partial.c_str(), "wb");
  if (!out) throw DatasetError(fmt::format("{}: cannot create", partial.string()));
  CURL* curl = curl_easy_init();
  if (!curl) {
    std::fclose(out);
    throw DatasetError("libcurl initialisation failed");
  }
  char error_text[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 15L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_text);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
  const CURLcode code = curl_easy_perform(curl);
  curl_easy_cleanup(curl);
  std::fclose(out);
  if (code != CURLE_OK) {
    fs::remove(partial);
    throw DatasetError(
        fmt::format("download of {} failed: {}", url, error_text[0] ? error_text : curl_easy_strerror(code)));
  }
  const std::string actual = sha256_file(partial);
  if (!expected_sha256.empty() && actual != expected_sha256) {
    fs::remove(partial);
    throw DatasetError(
        fmt::format("download of {}: SHA-256 {} does not match the expected {}", url, actual, expected_sha256));
  }
  fs::rename(partial, dest);
}

}  // namespace quanteval::datasets
