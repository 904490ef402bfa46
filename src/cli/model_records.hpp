// Records of a model run on N inputs of its own data (`attnviz stats --model M --inputs N`).
#pragma once
#include <attnviz/models/model.hpp>
#include <attnviz/record/record.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace attnviz::cli {

struct ModelInputs {
  std::string model;          // attnviz model file (mnist, translator, textcls), GGUF / minGPT JSON, HF decoder dir
  int inputs = 16;            // N
  int steps = 32;             // LMs: tokens generated after each prompt
  float temperature = 0.8f;   // LMs: sampling temperature of the continuations (seeds 1 .. N)
  std::string corpus;         // translators: a TSV of held-out pairs instead of the generator's test split
  models::RecordOptions what; // also norms / mixing where the model gives them (UsageError where not)
};

struct ModelRecords {
  std::vector<AttentionRecord> records;
  std::vector<std::string> sources;   // per record: "test image 3", "pair 7", "continuation 2"
  std::string description;            // "MNIST test images 0..99 (ViT)"
};

// MNIST models: the first N test images; translators: the first N held-out pairs (the built-in
// generator's test split, or --corpus), reference target forced; text classifiers: N texts spread
// over the held-out split the model file names; decoder LMs: N continuations of `steps` tokens
// sampled from BOS (no tokenizer: from token id k mod V) with seeds 1 .. N. Pretrained encoders
// have no data of their own: UsageError.
ModelRecords records_from_model(const ModelInputs& in);

}  // namespace attnviz::cli
