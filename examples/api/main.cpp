// Multi-head self-attention over 5 tokens, recorded into an AttentionRecord saved as .safetensors.
#include <attnviz/engine/attention.hpp>
#include <attnviz/record/record.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  using namespace attnviz;
  const char* out = argc > 1 ? argv[1] : "attention.safetensors";
  const int B = 1, T = 5, D = 16;

  nn::Rng rng(42);
  nn::MultiHeadAttention mha({.dim = D, .heads = 4});   // wq, wk, wv, wo; scaled-dot scores
  mha.init(rng);

  Mat x(B * T, D);   // [B*T, D]: one sequence of 5 token vectors (Q, K and V are projected from it)
  for (int i = 0; i < x.size(); ++i) x.data()[i] = rng.normal();

  nn::AttentionWeights weights;   // asking for the weights never changes the output
  Mat y = mha.forward(x, B, T, nn::AttnMask{.causal = true}, &weights);   // [B*T, D]

  AttentionRecord rec;
  rec.tokens["tokens"] = {"the", "cat", "sat", "on", "mats"};
  rec.tensors.push_back(weights.tensor(0, "encoder.layer0.self", "tokens", "tokens"));
  rec.metadata["attention"] = "scaled-dot";
  save_record(out, rec);

  std::printf("output [%d, %d], weights [%d, %d, %d] -> %s\n", static_cast<int>(y.rows()),
              static_cast<int>(y.cols()), weights.H, weights.Nq, weights.Nk, out);
}
