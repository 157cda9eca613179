#pragma once
// Pieces shared by the `generate` and `logits` verbs.
#include <memory>
#include <string>
#include <vector>

#include "harness/cli/args.hpp"
#include "runtime/model/model.hpp"

namespace quanteval::harness {

// "1,2,3" -> ids; UsageError naming the bad element.
std::vector<runtime::TokenId> parse_token_ids(const std::string& text);

// --device / --threads / --kv-cache-mb options and the model they load.
void add_model_options(Args& args);
std::unique_ptr<runtime::Model> load_model_from_args(const Args& args);

}  // namespace quanteval::harness
