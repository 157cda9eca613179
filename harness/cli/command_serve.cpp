// `quanteval serve`: the embedded runtime behind OpenAI-compatible routes
// (harness/serve/server.hpp). Prints one JSON line on stdout once it listens
// ({"event": "listening", "port": N, ...}: with --port 0 that is how a caller
// learns the port), serves until SIGTERM or SIGINT, then lets the requests in
// flight finish and exits 0.
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "harness/cli/commands.hpp"
#if QUANTEVAL_HAVE_SERVE
#include "harness/serve/server.hpp"
#endif
#include "runtime/runtime.hpp"

namespace quanteval::harness {

#if QUANTEVAL_HAVE_SERVE
int command_serve(int argc, char** argv, int first) {
  Args args("quanteval serve --model DIR|OWNER/NAME[@REV] [options]",
            "Serves the checkpoint with the embedded runtime over HTTP: /v1/completions (text or token-id prompts),\n"
            "/v1/chat/completions (the model's chat template, chat_template_kwargs.enable_thinking), /v1/models,\n"
            "/health, /tokenize, /detokenize, /version. Every concurrent request is batched together (continuous\n"
            "batching). Prints {\"event\": \"listening\", \"port\": N, ...} on stdout once it accepts connections;\n"
            "SIGTERM or SIGINT stops it after the requests in flight have finished (exit 0).");
  args.option("model", "DIR|OWNER/NAME[@REV]", "checkpoint folder or Hugging Face Hub id")
      .option("revision", "REV", "hub revision when --model is a hub id")
      .option("served-model-name", "NAME", "the model's name in /v1/models and answers (default: --model as given)")
      .option("host", "ADDR", "address to listen on (loopback unless told otherwise)", "127.0.0.1")
      .option("port", "N", "port (0 = any free port; the bound one is printed)", "8000")
      .option("api-key", "KEY", "require 'Authorization: Bearer KEY' on every route but /health")
      .option("device", "cpu|cuda|auto", "compute device", "auto")
      .option("threads", "N", "CPU threads for the runtime (0 = all cores)", "0")
      .option("max-batch", "N", "sequences decoded together (continuous batching)", "16")
      .option("kv-cache-mb", "MB", "model memory in MiB for K/V blocks and recurrent state (0 = auto)", "0")
      .option("max-concurrency", "N", "requests generating at once; more are answered 429", "64")
      .option("max-request-bytes", "N", "largest request body accepted (413 above)", "8388608")
      .option("max-tokens-limit", "N", "largest max_tokens a request may ask for", "32768")
      .flag("quiet", "no line per request on stderr");
  if (!args.parse(argc, argv, first)) return 0;

  ServeOptions options;
  options.host = args.get("host");
  options.port = args.get_int("port", 0, 65535);
  options.api_key = args.maybe("api-key").value_or("");
  options.served_name = args.maybe("served-model-name").value_or(args.get("model"));
  options.max_concurrency = args.get_int("max-concurrency", 1, 100000);
  options.max_request_bytes = static_cast<std::size_t>(args.get_int("max-request-bytes", 1024, 1 << 30));
  options.max_tokens_limit = args.get_int("max-tokens-limit", 1, 1 << 24);
  options.generator.max_batch = args.get_int("max-batch", 1, 4096);
  options.log_requests = !args.is_set("quiet");

  runtime::hub::Options hub_options;
  if (auto revision = args.maybe("revision")) hub_options.revision = *revision;
  const runtime::hub::ResolvedModel resolved = runtime::hub::resolve(args.get("model"), hub_options);
  runtime::LoadOptions load;
  load.device = runtime::select_device(args.get("device"));
  load.threads = args.get_int("threads", 0, 1024);
  load.max_sequences = options.generator.max_batch;
  load.kv_cache_bytes = static_cast<std::uint64_t>(args.get_int("kv-cache-mb", 0, 1 << 20)) << 20;

  // SIGTERM/SIGINT are taken by one thread with sigwait (no handler, no global state): blocked
  // here, before any thread starts, so every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // A client that disconnects before its answer is written must not kill the server.
  ::signal(SIGPIPE, SIG_IGN);

  const runtime::Tokenizer tokenizer = runtime::Tokenizer::from_file(resolved.directory);
  std::optional<runtime::ChatTemplate> chat;
  try {
    chat.emplace(runtime::ChatTemplate::from_model_dir(resolved.directory));
  } catch (const runtime::ChatTemplateError& e) {
    fmt::print(stderr, "quanteval serve: no chat template ({}); /v1/chat/completions answers 400\n", e.what());
  }
  const auto model = runtime::Model::load(resolved.directory, load);
  CompletionServer server(*model, tokenizer, chat ? &*chat : nullptr, options);
  const int port = server.bind();

  std::atomic<bool> signalled{false};
  std::thread waiter([&] {
    int signal = 0;
    sigwait(&stop_signals, &signal);
    signalled = true;
    server.stop();
  });
  fmt::print("{}\n", nlohmann::json{{"event", "listening"},
                                    {"host", options.host},
                                    {"port", port},
                                    {"url", fmt::format("http://{}:{}/v1", options.host, port)},
                                    {"model", options.served_name},
                                    {"device", model->backend().name()}}
                         .dump());
  std::fflush(stdout);
  server.serve();
  if (!signalled) pthread_kill(waiter.native_handle(), SIGTERM);  // serve() ended by itself: release the waiter
  waiter.join();
  fmt::print(stderr, "quanteval serve: stopped\n");
  return 0;
}

#else
// Built with -DQUANTEVAL_SERVE=OFF (the GPU bundle): the verb exists but says why it cannot run.
int command_serve(int, char**, int) {
  throw UsageError(
      "quanteval serve is not in this build (configured with -DQUANTEVAL_SERVE=OFF, as the GPU bundle "
      "is); use a regular build");
}
#endif

}  // namespace quanteval::harness
