// Placeholder until the sandbox lands (being written on its own branch).
#include "sandbox/sandbox.hpp"

namespace quanteval::sandbox {
struct Pool::Impl {
  Config config;
  Protections protections;
};
Pool::Pool(Config config) : impl_(new Impl{std::move(config), {}}) { throw SandboxError("sandbox not built yet"); }
Pool::~Pool() = default;
Result Pool::run(const std::string&, const Limits*) { return {}; }
std::vector<Result> Pool::run_all(const std::vector<std::string>&, const std::function<void(std::size_t, const Result&)>&) { return {}; }
const Protections& Pool::protections() const { return impl_->protections; }
const Config& Pool::config() const { return impl_->config; }
const char* to_string(Outcome) { return ""; }
std::vector<std::string> Protections::active() const { return {}; }
}  // namespace quanteval::sandbox
