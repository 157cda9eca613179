#pragma once
// A blocking HTTP client over one libcurl easy handle: what OpenAIBackend's
// workers use, one client per thread (a handle keeps its connection alive
// between requests and is not shared). Transport problems (refused, reset,
// timed out) are reported in the result, never thrown: the caller decides
// whether to retry.
#include <atomic>
#include <memory>
#include <string>
#include <vector>

namespace quanteval::harness {

struct HttpResponse {
  long status = 0;           // HTTP status; 0 when no response came (see error)
  std::string body;          // the response body, as received
  std::string error;         // non-empty: the transport failed (curl's message)
  bool timed_out = false;    // the transport error was the request's time limit
  double retry_after_s = 0;  // a Retry-After header in seconds (0 when absent)
  double transfer_s = 0;     // curl's own total time for the request
};

class HttpClient {
 public:
  // `headers` go with every request ("Authorization: Bearer ..." included);
  // they are never logged.
  explicit HttpClient(std::vector<std::string> headers);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // While *flag is true, a transfer in progress is abandoned within about a second (error "cancelled").
  void set_cancel_flag(const std::atomic<bool>* flag) { cancel_ = flag; }

  HttpResponse get(const std::string& url, double timeout_s);
  HttpResponse post_json(const std::string& url, const std::string& body, double timeout_s);

 private:
  HttpResponse perform(const std::string& url, const std::string* body, double timeout_s);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  const std::atomic<bool>* cancel_ = nullptr;
};

// `url` with any user:password@ and query string removed: what reports and
// error messages may show.
std::string redact_url(const std::string& url);

}  // namespace quanteval::harness
