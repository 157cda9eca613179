#pragma once
// Where a model's weights come from. The model builder asks a WeightSource for
// each tensor by its name in the tensor table and hands it to a backend, which
// copies or repacks it into its own storage; nothing else reads weights. Two
// sources exist: a checkpoint on disk (CheckpointWeights, checkpoint.hpp) and
// random weights with real shapes (SyntheticWeights, synthetic.hpp), so a
// synthetic model is built by exactly the code that loads a real one.
//
// Views handed out (LinearSource, TableSource) are valid until the source's
// release() for them returns; the builder calls release() as soon as the
// backend has taken what it needs, so a checkpoint's mapped pages are dropped
// tensor by tensor (see release_resident_pages).
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/checkpoint/gptq.hpp"
#include "runtime/checkpoint/model_config.hpp"
#include "runtime/checkpoint/quant_config.hpp"
#include "runtime/checkpoint/safetensors.hpp"

namespace quanteval::runtime {

// A 2-D table of 16-bit or fp32 values [rows, cols] row-major, e.g. a dense
// projection weight [N, K] or the embedding [vocab, hidden].
struct DenseSource {
  DType dtype = DType::bf16;  // bf16, f16 or f32
  std::int64_t rows = 0, cols = 0;
  const std::byte* bytes = nullptr;  // rows * cols * element size bytes; not necessarily aligned
  // Copies the bytes to `destination` (for a checkpoint, piece by piece while
  // releasing each piece's mapped pages: a 2.5 GB table is never resident twice).
  std::function<void(void* destination)> copy_to;
};

// One projection y = x W^T + b: dense or GPTQ INT4.
struct LinearSource {
  std::string name;                        // the module prefix, for messages
  std::int64_t out_features = 0;           // N
  std::int64_t in_features = 0;            // K
  std::optional<DenseSource> dense;        // set for a dense projection
  std::optional<GptqWeight> gptq;          // set for a GPTQ projection (views)
  std::vector<float> bias;                 // [N] or empty
  std::shared_ptr<const void> storage;     // keeps synthetic data alive while the views are in use
  std::vector<const TensorView*> tensors;  // the checkpoint tensors behind the views (for release)
};

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual const ModelConfig& config() const = 0;
  virtual const std::optional<QuantConfig>& quant_config() const = 0;
  // Describes where the weights are, for messages ("/models/x", "synthetic qwen3.5-27b").
  virtual std::string describe() const = 0;

  virtual bool has_linear(std::string_view prefix) const = 0;
  // The projection under `prefix` with the shape the caller expects (checked: a
  // mismatch throws CheckpointError naming the module and both shapes).
  virtual LinearSource linear(std::string_view prefix, std::int64_t out_features, std::int64_t in_features) const = 0;
  // A plain tensor as fp32 with exactly `elements` values (norms, conv taps, A_log, ...).
  virtual std::vector<float> vector(std::string_view name, std::int64_t elements) const = 0;
  // The embedding-style table `name` [rows, cols].
  virtual DenseSource table(std::string_view name, std::int64_t rows, std::int64_t cols) const = 0;
  // Done with the views of this linear / table: a checkpoint drops their pages.
  virtual void release(const LinearSource& linear) const = 0;
  virtual void release_table(std::string_view name) const = 0;
};

}  // namespace quanteval::runtime
