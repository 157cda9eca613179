#pragma once
// Hugging Face Hub checkpoints: `--model owner/name[@revision]` is downloaded
// once into a local cache and used from there afterwards.
//  - endpoint: $HF_ENDPOINT or https://huggingface.co (tests point it at a local server);
//  - auth: $HF_TOKEN (Bearer), for gated or private repositories;
//  - revision pinning: a branch, tag or commit; the resolved commit is recorded
//    and the files are stored under it, so a pinned run never changes;
//  - verification: every file's size, and the SHA-256 of LFS files, as the
//    hub's API lists them; a mismatch deletes the file and fails;
//  - resume: a partial file (`.incomplete`) continues with an HTTP Range request;
//  - offline ($HF_HUB_OFFLINE=1 or no network) with an empty cache: a clear
//    message saying what to download and where to put it.
// Only the files a checkpoint needs are fetched (configs, tokenizer, chat
// template, safetensors shards); pickles and other formats are ignored.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace quanteval::runtime::hub {

struct HubError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct DownloadProgress {
  std::string file;
  std::uint64_t done_bytes = 0;
  std::uint64_t total_bytes = 0;  // 0 when unknown
};

struct Options {
  std::string endpoint;             // empty: $HF_ENDPOINT, else https://huggingface.co
  std::string token;                // empty: $HF_TOKEN
  std::string revision;             // empty: the revision in the id (owner/name@rev), else "main"
  std::filesystem::path cache_dir;  // empty: $QUANTEVAL_CACHE_DIR/hub or ~/.cache/quanteval/hub
  bool offline = false;             // also set by $HF_HUB_OFFLINE=1
  std::function<void(const DownloadProgress&)> on_progress;
};

struct ResolvedModel {
  std::filesystem::path directory;  // local folder with the checkpoint files
  std::string id;                   // "owner/name", empty for a local path
  std::string revision;             // as requested
  std::string commit;               // resolved commit sha (hub models)
  bool downloaded = false;          // true when anything was fetched this time
};

// True for "owner/name" or "owner/name@rev" that is not an existing local path.
bool is_hub_id(std::string_view model);

// A local directory is returned as is; a hub id is resolved through the cache,
// downloading what is missing.
ResolvedModel resolve(const std::string& model, const Options& options = {});

}  // namespace quanteval::runtime::hub
