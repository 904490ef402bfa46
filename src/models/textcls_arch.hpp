// The two text classifier architectures behind make_textcls_model (internal to src/models).
#pragma once
#include <attnviz/models/textcls.hpp>
#include <attnviz/engine/attention.hpp>
#include <attnviz/engine/blocks.hpp>
#include <attnviz/engine/layers.hpp>

namespace attnviz::models {

// Word dropout (training only): each non-padding id becomes <unk> with probability p.
inline std::vector<int> drop_words(const std::vector<int>& ids, float p, nn::Rng& rng) {
  std::vector<int> out = ids;
  if (p <= 0.f) return out;
  for (int& id : out)
    if (id != Vocabulary::kPad && rng.uniform() < p) id = Vocabulary::kUnk;
  return out;
}

// ids -> Embedding [B*T, E] -> Dropout -> BiGRU [B*T, 2H] -> (embed_skip: [states | embeddings],
// K = 2H + E wide; else K = 2H) -> AttentionPooling (one learned query, score additive | general |
// scaled-dot) [B, K] -> Dropout -> Linear [B, C].
// Parameters: "embed.weight" [V, E], "encoder.fwd.*", "encoder.bwd.*", "pool.query" [1, K],
// "pool.attn.*", "head.weight" [K, C], "head.bias" [1, C].
class BiGruAttentionClassifier : public TextClassifier {
 public:
  BiGruAttentionClassifier(const TextClsConfig& cfg, Vocabulary vocab, std::vector<std::string> labels);
  void init(nn::Rng& rng);
  Mat forward(const TextBatch& batch, nn::Rng* dropout_rng, AttentionSink* sink) override;
  void backward(const Mat& dlogits) override;
  std::vector<AttentionTensor> attention(int b) const override;
  std::string pool_description() const override;

  nn::Embedding embed;
  nn::Dropout drop_embed, drop_pool;
  nn::BiGruEncoder encoder;
  nn::AttentionPooling pool;
  nn::Linear head;

 private:
  int pool_dim() const { return 2 * cfg_.hidden + (cfg_.embed_skip ? cfg_.embed : 0); }
  TextBatch batch_;
  nn::AttentionWeights weights_;   // [B, 1, 1, T]
};

// [CLS] + ids -> Embedding [B*(T+1), D] + positions -> Dropout -> L pre-LN encoder blocks (padding
// masked) -> LayerNorm -> the [CLS] row [B, D] -> Dropout -> Linear [B, C].
// Parameters: "embed.weight" [V, D], "pos.weight" [max_len+1, D], "encoder.layer{l}.*",
// "norm.*", "head.*". [CLS] is the vocabulary's <bos> id.
class TransformerClassifier : public TextClassifier {
 public:
  TransformerClassifier(const TextClsConfig& cfg, Vocabulary vocab, std::vector<std::string> labels);
  void init(nn::Rng& rng);
  Mat forward(const TextBatch& batch, nn::Rng* dropout_rng, AttentionSink* sink) override;
  void backward(const Mat& dlogits) override;
  std::vector<AttentionTensor> attention(int b) const override;
  std::string pool_description() const override;
  bool explain(const std::vector<int>& klass) override;
  std::vector<AttentionTensor> attention_grads(int b) const override;
  std::vector<AttentionTensor> attention_relevance(int b) const override;
  Mat input_relevance() const override { return rin_; }

  nn::Embedding embed;
  nn::PositionalEmbedding pos;
  nn::Dropout drop_embed, drop_pool;
  std::vector<nn::EncoderBlock> blocks;
  nn::LayerNorm norm;
  nn::Linear head;

 private:
  int B_ = 0, T1_ = 0;                          // T1 = T + 1 (with [CLS])
  std::vector<int> lengths_;                    // [B] text lengths (without [CLS])
  std::vector<nn::AttentionWeights> weights_;   // per layer [B, H, T1, T1] (forward with a sink only)
  std::vector<Mat> xs_;                         // per layer: the block's input [B*T1, D] (with a sink)
  std::vector<nn::AttentionWeights> grads_, rel_;   // per layer [B, H, T1, T1] after explain()
  Mat rin_;                                     // [B*T1, D] relevance of the embeddings after explain()
  std::vector<std::vector<std::pair<std::string, nn::AttentionWeights>>> extra_;   // per layer: norms, mixing (when asked)
};

}  // namespace attnviz::models
