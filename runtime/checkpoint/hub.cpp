#include "runtime/checkpoint/hub.hpp"

#include <curl/curl.h>
#include <fmt/format.h>
#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <vector>

namespace quanteval::runtime::hub {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

struct RemoteFile {
  std::string name;
  std::uint64_t size = 0;  // 0 when the API does not say
  std::string sha256;      // LFS files only
};

bool wanted(const std::string& name) {
  if (name.find("..") != std::string::npos || name.starts_with('/')) return false;  // never leave the snapshot folder
  for (const char* ext : {".json", ".safetensors", ".jinja", ".txt"})
    if (name.ends_with(ext)) return true;
  return false;
}

std::string sha256_of(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> buffer(1 << 20);
  while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0)
    EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<std::size_t>(in.gcount()));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  std::string hex;
  for (unsigned int i = 0; i < length; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

class Http {
 public:
  Http(std::string token) : token_(std::move(token)) {}

  struct Response {
    long status = 0;
    CURLcode code = CURLE_OK;
    std::string error;
  };

  Response get_text(const std::string& url, std::string& body) {
    return perform(url, 0, [&](const char* data, std::size_t n) {
      body.append(data, n);
      return true;
    });
  }

  // Appends to `file` from byte `offset` (Range request when offset > 0).
  Response get_file(const std::string& url, const fs::path& file, std::uint64_t offset,
                    const std::function<void(std::uint64_t)>& on_bytes) {
    std::FILE* out = std::fopen(file.c_str(), offset > 0 ? "ab" : "wb");
    if (!out) throw HubError(fmt::format("{}: cannot write", file.string()));
    std::uint64_t written = offset;
    bool restarted = false;
    Response r = perform(url, offset, [&](const char* data, std::size_t n) {
      if (offset > 0 && status_ == 200 && !restarted) {
        // The server ignored the Range header and sends the whole file: start over.
        std::fclose(out);
        out = std::fopen(file.c_str(), "wb");
        written = 0;
        restarted = true;
      }
      if (!out || std::fwrite(data, 1, n, out) != n) return false;
      written += n;
      if (on_bytes) on_bytes(written);
      return true;
    });
    if (out) std::fclose(out);
    return r;
  }

 private:
  using Sink = std::function<bool(const char*, std::size_t)>;

  static std::size_t on_write(char* data, std::size_t size, std::size_t count, void* self_ptr) {
    auto* self = static_cast<Http*>(self_ptr);
    curl_easy_getinfo(self->curl_, CURLINFO_RESPONSE_CODE, &self->status_);
    if (self->status_ >= 400) return size * count;  // error bodies are discarded
    return (*self->sink_)(data, size * count) ? size * count : 0;
  }

  Response perform(const std::string& url, std::uint64_t offset, Sink sink) {
    std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
    if (!curl) throw HubError("libcurl initialisation failed");
    curl_ = curl.get();
    sink_ = &sink;
    status_ = 0;
    char error_text[CURL_ERROR_SIZE] = {0};
    curl_slist* headers = nullptr;
    if (!token_.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + token_).c_str());
    std::unique_ptr<curl_slist, void (*)(curl_slist*)> header_guard(headers, curl_slist_free_all);
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_FOLLOWLOCATION, 1L);
    // Redirects go to CDN hosts; the token must not follow them there.
    curl_easy_setopt(curl_, CURLOPT_UNRESTRICTED_AUTH, 0L);
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT, 20L);
    curl_easy_setopt(curl_, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl_, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(curl_, CURLOPT_ERRORBUFFER, error_text);
    curl_easy_setopt(curl_, CURLOPT_USERAGENT, "quanteval");
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &Http::on_write);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, this);
    const std::string range = fmt::format("{}-", offset);
    if (offset > 0) curl_easy_setopt(curl_, CURLOPT_RANGE, range.c_str());
    Response r;
    r.code = curl_easy_perform(curl_);
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &r.status);
    r.error = error_text[0] ? error_text : curl_easy_strerror(r.code);
    curl_ = nullptr;
    sink_ = nullptr;
    return r;
  }

  std::string token_;
  CURL* curl_ = nullptr;
  Sink* sink_ = nullptr;
  long status_ = 0;
};

std::string describe_status(long status, const std::string& id, const std::string& revision) {
  if (status == 401 || status == 403)
    return fmt::format("HTTP {}: {} is gated or private; set HF_TOKEN to a token with access", status, id);
  if (status == 404) return fmt::format("HTTP 404: no model {} at revision {}", id, revision);
  return fmt::format("HTTP {}", status);
}

void write_text(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  const fs::path temp = file.string() + ".tmp";
  std::ofstream(temp) << text;
  fs::rename(temp, file);
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

bool is_hub_id(std::string_view model) {
  if (model.empty() || fs::exists(fs::path(std::string(model)))) return false;
  const std::string_view id = model.substr(0, model.find('@'));
  const auto slash = id.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == id.size() ||
      id.find('/', slash + 1) != std::string_view::npos)
    return false;
  for (char ch : id)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.' || ch == '/'))
      return false;
  return !id.starts_with('.') && id.find("..") == std::string_view::npos;
}

ResolvedModel resolve(const std::string& model, const Options& options) {
  ResolvedModel result;
  if (fs::is_directory(model)) {
    result.directory = model;
    return result;
  }
  if (!is_hub_id(model))
    throw HubError(
        fmt::format("--model {}: not a directory, and not a hub id of the form owner/name[@revision]", model));
  const auto at = model.find('@');
  result.id = model.substr(0, at);
  result.revision = !options.revision.empty() ? options.revision
                    : at != std::string::npos ? model.substr(at + 1)
                                              : "main";
  const std::string endpoint = !options.endpoint.empty()     ? options.endpoint
                               : !env("HF_ENDPOINT").empty() ? env("HF_ENDPOINT")
                                                             : "https://huggingface.co";
  const std::string token = !options.token.empty() ? options.token : env("HF_TOKEN");
  const bool offline = options.offline || env("HF_HUB_OFFLINE") == "1";
  fs::path cache = options.cache_dir;
  if (cache.empty()) {
    if (!env("QUANTEVAL_CACHE_DIR").empty())
      cache = fs::path(env("QUANTEVAL_CACHE_DIR")) / "hub";
    else if (!env("XDG_CACHE_HOME").empty())
      cache = fs::path(env("XDG_CACHE_HOME")) / "quanteval" / "hub";
    else
      cache = fs::path(env("HOME").empty() ? "/tmp" : env("HOME")) / ".cache" / "quanteval" / "hub";
  }
  std::string folder = "models";
  for (char ch : "/" + result.id) folder += ch == '/' ? std::string("--") : std::string(1, ch);
  const fs::path repo = cache / folder;
  const fs::path ref_file = repo / "refs" / result.revision;

  auto cached_snapshot = [&]() -> std::optional<std::string> {
    if (!fs::exists(ref_file)) return std::nullopt;
    const std::string commit = read_text(ref_file);
    if (!fs::exists(repo / "snapshots" / commit / ".complete")) return std::nullopt;
    return commit;
  };
  auto offline_error = [&](const std::string& why) {
    return HubError(fmt::format(
        "{}@{} is not in the cache ({}) and cannot be downloaded: {}.\n"
        "Download the repository files (config.json, tokenizer files, *.safetensors) into a folder and pass "
        "--model FOLDER, or run once with network access.",
        result.id, result.revision, repo.string(), why));
  };

  if (offline) {
    if (auto commit = cached_snapshot()) {
      result.commit = *commit;
      result.directory = repo / "snapshots" / *commit;
      return result;
    }
    throw offline_error("offline mode (HF_HUB_OFFLINE=1)");
  }

  Http http(token);
  std::string body;
  const std::string api = fmt::format("{}/api/models/{}/revision/{}?blobs=true", endpoint, result.id, result.revision);
  const auto info = http.get_text(api, body);
  if (info.code != CURLE_OK || info.status >= 400) {
    if (info.code == CURLE_OK && info.status != 0 && info.status != 503 && info.status != 502)
      throw HubError(fmt::format("{}: {}", api, describe_status(info.status, result.id, result.revision)));
    if (auto commit = cached_snapshot()) {  // network down: the cache still serves a pinned copy
      result.commit = *commit;
      result.directory = repo / "snapshots" / *commit;
      return result;
    }
    throw offline_error(info.code != CURLE_OK ? info.error : describe_status(info.status, result.id, result.revision));
  }
  json meta;
  try {
    meta = json::parse(body);
    result.commit = meta.at("sha").get<std::string>();
  } catch (const std::exception& e) {
    throw HubError(fmt::format("{}: unexpected API answer ({})", api, e.what()));
  }
  if (result.commit.empty() || result.commit.find_first_of("/.") != std::string::npos)
    throw HubError(fmt::format("{}: invalid commit id '{}'", api, result.commit));
  std::vector<RemoteFile> files;
  for (const auto& sibling : meta.value("siblings", json::array())) {
    RemoteFile f;
    f.name = sibling.value("rfilename", "");
    if (!wanted(f.name)) continue;
    if (sibling.contains("lfs") && sibling["lfs"].is_object()) {
      f.sha256 = sibling["lfs"].value("sha256", "");
      f.size = sibling["lfs"].value("size", std::uint64_t{0});
    }
    if (f.size == 0) f.size = sibling.value("size", std::uint64_t{0});
    files.push_back(f);
  }
  if (files.empty())
    throw HubError(
        fmt::format("{}@{}: the repository lists no config or safetensors files", result.id, result.revision));

  const fs::path snapshot = repo / "snapshots" / result.commit;
  fs::create_directories(snapshot);
  for (const auto& f : files) {
    const fs::path dest = snapshot / f.name;
    if (fs::exists(dest) && (f.size == 0 || fs::file_size(dest) == f.size)) continue;
    fs::create_directories(dest.parent_path());
    const fs::path part = dest.string() + ".incomplete";
    const std::string url = fmt::format("{}/{}/resolve/{}/{}", endpoint, result.id, result.commit, f.name);
    // A broken connection is resumed from where it stopped, a few times.
    Http::Response r;
    for (int attempt = 0; attempt < 5; ++attempt) {
      const std::uint64_t offset = fs::exists(part) ? fs::file_size(part) : 0;
      if (f.size != 0 && offset == f.size) break;
      r = http.get_file(url, part, offset, [&](std::uint64_t done) {
        if (options.on_progress) options.on_progress({f.name, done, f.size});
      });
      if (r.code == CURLE_OK && r.status < 400) break;
      if (r.status >= 400 && r.status != 416) break;
    }
    if (r.status >= 400 && r.status != 416)
      throw HubError(fmt::format("{}: {}", url, describe_status(r.status, result.id, result.revision)));
    if (r.code != CURLE_OK && r.status != 416)
      throw HubError(
          fmt::format("{}: download failed after retries: {} (the partial file {} is kept and resumed next time)", url,
                      r.error, part.string()));
    const std::uint64_t got = fs::file_size(part);
    if (f.size != 0 && got != f.size) {
      fs::remove(part);
      throw HubError(fmt::format("{}: size {} does not match the {} bytes the hub lists", url, got, f.size));
    }
    if (!f.sha256.empty()) {
      const std::string actual = sha256_of(part);
      if (actual != f.sha256) {
        fs::remove(part);
        throw HubError(fmt::format("{}: SHA-256 {} does not match the hub's {}", url, actual, f.sha256));
      }
    }
    fs::rename(part, dest);
    result.downloaded = true;
  }
  write_text(snapshot / ".complete", "");
  write_text(ref_file, result.commit);
  result.directory = snapshot;
  return result;
}

}  // namespace quanteval::runtime::hub
