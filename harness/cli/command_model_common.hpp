#pragma once
// Pieces shared by the runtime debugging verbs (`generate`, `logits`, `detokenize`).
#include <memory>
#include <string>
#include <vector>

#include "harness/cli/args.hpp"
#include "runtime/runtime.hpp"

namespace quanteval::harness {

// "1,2,3" (spaces allowed around items) -> ids; UsageError naming the option
// and the bad element for anything that is not a non-negative 32-bit id.
std::vector<runtime::TokenId> parse_token_ids(const std::string& text, const char* option = "ids");

// --device / --threads / --kv-cache-mb options and the model they load.
void add_model_options(Args& args);
// --device as a runtime device ("auto" is cpu for now; "cuda" fails clearly without a GPU).
runtime::Device device_from_args(const Args& args);
std::unique_ptr<runtime::Model> load_model_from_args(const Args& args);

}  // namespace quanteval::harness
