#include "harness/generation/http_client.hpp"

#include <curl/curl.h>
#include <fmt/format.h>

#include <cctype>
#include <mutex>
#include <stdexcept>

namespace quanteval::harness {

namespace {

// curl_global_init is not thread-safe in older libcurl; once per process, before the first handle.
void ensure_curl_initialized() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::size_t append_body(char* data, std::size_t size, std::size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

// Reads "Retry-After: <seconds>" (the HTTP-date form is rare from inference servers and ignored).
std::size_t read_header(char* data, std::size_t size, std::size_t count, void* user) {
  const std::string line(data, size * count);
  constexpr std::string_view name = "retry-after:";
  if (line.size() > name.size()) {
    std::string head = line.substr(0, name.size());
    for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (head == name) {
      try {
        *static_cast<double*>(user) = std::stod(line.substr(name.size()));
      } catch (const std::exception&) {
      }
    }
  }
  return size * count;
}

// libcurl's progress hook, called about once a second and on every chunk: non-zero aborts.
int check_cancel(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* flag = static_cast<const std::atomic<bool>*>(user);
  return flag && flag->load() ? 1 : 0;
}

}  // namespace

struct HttpClient::Impl {
  CURL* handle = nullptr;
  curl_slist* headers = nullptr;
};

HttpClient::HttpClient(std::vector<std::string> headers) : impl_(std::make_unique<Impl>()) {
  ensure_curl_initialized();
  impl_->handle = curl_easy_init();
  if (!impl_->handle) throw std::runtime_error("libcurl: could not create a handle");
  for (const auto& h : headers) impl_->headers = curl_slist_append(impl_->headers, h.c_str());
}

HttpClient::~HttpClient() {
  curl_slist_free_all(impl_->headers);
  curl_easy_cleanup(impl_->handle);
}

HttpResponse HttpClient::get(const std::string& url, double timeout_s) { return perform(url, nullptr, timeout_s); }

HttpResponse HttpClient::post_json(const std::string& url, const std::string& body, double timeout_s) {
  return perform(url, &body, timeout_s);
}

HttpResponse HttpClient::perform(const std::string& url, const std::string* body, double timeout_s) {
  CURL* h = impl_->handle;
  HttpResponse response;
  curl_easy_reset(h);
  curl_slist* headers = nullptr;
  for (curl_slist* item = impl_->headers; item; item = item->next) headers = curl_slist_append(headers, item->data);
  if (body) headers = curl_slist_append(headers, "Content-Type: application/json");
  // No "Expect: 100-continue" round trip for large prompts.
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for DNS timeouts
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_s * 1000));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min(timeout_s, 10.0) * 1000));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, read_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &response.retry_after_s);
  if (cancel_) {
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, check_cancel);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(cancel_));
  }
  if (body) {
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
  }
  const CURLcode code = curl_easy_perform(h);
  curl_slist_free_all(headers);
  curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &response.transfer_s);
  if (code != CURLE_OK) {
    response.error = code == CURLE_ABORTED_BY_CALLBACK ? "cancelled" : curl_easy_strerror(code);
    response.timed_out = code == CURLE_OPERATION_TIMEDOUT;
    return response;
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

std::string redact_url(const std::string& url) {
  std::string out = url;
  if (const auto q = out.find_first_of("?#"); q != std::string::npos) out.resize(q);
  const auto scheme = out.find("://");
  const std::size_t host_start = scheme == std::string::npos ? 0 : scheme + 3;
  const auto path_start = out.find('/', host_start);
  const auto at = out.rfind('@', path_start == std::string::npos ? std::string::npos : path_start);
  if (at != std::string::npos && at >= host_start) out.erase(host_start, at + 1 - host_start);
  return out;
}

}  // namespace quanteval::harness
