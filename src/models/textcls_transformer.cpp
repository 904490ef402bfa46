// The transformer-encoder text classifier: [CLS] + words, pre-LN blocks, classification from [CLS].
#include "models/textcls_arch.hpp"
#include "models/attention_extras.hpp"

#include <attnviz/error.hpp>

namespace attnviz::models {

TransformerClassifier::TransformerClassifier(const TextClsConfig& cfg, Vocabulary vocab,
                                             std::vector<std::string> labels)
    : TextClassifier(cfg, std::move(vocab), std::move(labels)),
      embed(cfg.vocab, cfg.dim, Vocabulary::kPad),
      pos(cfg.max_len + 1, cfg.dim),
      drop_embed(cfg.dropout),
      drop_pool(cfg.dropout),
      norm(cfg.dim),
      head(cfg.dim, cfg.classes) {
  embed.collect(params_, "embed");
  pos.collect(params_, "pos");
  nn::EncoderBlockOptions bo;
  bo.dim = cfg.dim;
  bo.heads = cfg.heads;
  bo.mlp_hidden = cfg.mlp;
  bo.dropout = 0.1f;
  for (int l = 0; l < cfg.layers; ++l) blocks.emplace_back(bo);
  for (int l = 0; l < cfg.layers; ++l) blocks[l].collect(params_, "encoder.layer" + std::to_string(l));
  norm.collect(params_, "norm");
  head.collect(params_, "head");
}

void TransformerClassifier::init(nn::Rng& rng) {
  embed.init(rng, 0.1f);
  pos.init(rng, 0.02f);
  for (auto& b : blocks) b.init(rng);
  head.init(rng);
}

Mat TransformerClassifier::forward(const TextBatch& batch, nn::Rng* dropout_rng, AttentionSink* sink) {
  // ids: [B*T] -> [CLS]+ids [B*T1] -> logits [B, C]
  const int B = batch.B, T1 = batch.T + 1;
  B_ = B;
  T1_ = T1;
  lengths_ = batch.lengths;
  std::vector<int> ids(static_cast<size_t>(B) * T1);
  nn::AttnMask mask;
  for (int b = 0; b < B; ++b) {
    ids[static_cast<size_t>(b) * T1] = Vocabulary::kBos;
    for (int t = 0; t < batch.T; ++t) ids[static_cast<size_t>(b) * T1 + t + 1] = batch.ids[static_cast<size_t>(b) * batch.T + t];
    mask.key_lengths.push_back(batch.lengths[b] + 1);
  }
  const bool training = dropout_rng != nullptr;
  nn::Rng none(0);
  nn::Rng& rng = training ? *dropout_rng : none;
  if (training) {   // word dropout on the words, never on [CLS]
    for (int b = 0; b < B; ++b)
      for (int t = 1; t < T1; ++t) {
        int& id = ids[static_cast<size_t>(b) * T1 + t];
        if (id != Vocabulary::kPad && cfg_.word_dropout > 0.f && rng.uniform() < cfg_.word_dropout) id = Vocabulary::kUnk;
      }
  }
  Mat x = pos.forward(embed.forward(ids), B, T1);   // [B*T1, D]
  x = drop_embed.forward(x, rng, training);
  // Weights only when asked: without a sink the kernel skips its weights pass (training never asks).
  weights_.assign(sink ? blocks.size() : 0, {});
  extra_.assign(sink ? blocks.size() : 0, {});
  for (size_t l = 0; l < blocks.size(); ++l) {
    Mat in = sink && sink->wants_mixing() ? x : Mat();   // value zeroing reruns the block's second half from it
    x = blocks[l].forward(x, B, T1, mask, sink ? &weights_[l] : nullptr, training ? dropout_rng : nullptr);
    if (!sink) continue;
    const std::string name = "encoder.layer" + std::to_string(l) + ".self";
    sink->weights(name, nn::AttentionWeights(weights_[l]));
    encoder_block_extras(blocks[l], in, weights_[l], name, *sink, &extra_[l]);
  }
  x = norm.forward(x);                               // [B*T1, D]
  Mat cls(B, cfg_.dim);                              // [B, D]
  for (int b = 0; b < B; ++b) cls.row(b) = x.row(static_cast<Eigen::Index>(b) * T1);
  return head.forward(drop_pool.forward(cls, rng, training));
}

void TransformerClassifier::backward(const Mat& dlogits) {
  // undo head + dropout, the [CLS] row pick, the final norm, the blocks, dropout, positions, embedding
  Mat dcls = drop_pool.backward(head.backward(dlogits));             // [B, D]
  Mat dx = Mat::Zero(static_cast<Eigen::Index>(B_) * T1_, cfg_.dim);  // [B*T1, D]
  for (int b = 0; b < B_; ++b) dx.row(static_cast<Eigen::Index>(b) * T1_) = dcls.row(b);
  dx = norm.backward(dx);
  for (size_t l = blocks.size(); l-- > 0;) dx = blocks[l].backward(dx);
  dx = drop_embed.backward(dx);
  embed.backward(pos.backward(dx));
}

std::vector<AttentionTensor> TransformerClassifier::attention(int b) const {
  const int n = lengths_.at(b) + 1;   // [CLS] + words
  std::vector<AttentionTensor> out;
  if (weights_.empty()) return out;   // the last forward had no sink
  for (size_t l = 0; l < weights_.size(); ++l) {
    out.push_back(weights_[l].tensor(b, "encoder.layer" + std::to_string(l) + ".self", "tokens_cls", "tokens_cls", n, n));
    if (l < extra_.size())
      for (const auto& [name, t] : extra_[l]) out.push_back(t.tensor(b, name, "tokens_cls", "tokens_cls", n, n));
  }
  add_mixing_rollout(out, "encoder");
  // pool: the last layer's [CLS] row, mean over heads, [CLS] key dropped, renormalised.
  const AttentionTensor last = weights_.back().tensor(b, "last", "", "", n, n);
  AttentionTensor pool("pool", 1, 1, n - 1, "query", "tokens");
  double sum = 0;
  for (int k = 1; k < n; ++k) {
    float m = 0;
    for (int h = 0; h < last.heads; ++h) m += last.at(h, 0, k) / last.heads;
    pool.at(0, 0, k - 1) = m;
    sum += m;
  }
  if (sum > 0)
    for (auto& v : pool.data) v = static_cast<float>(v / sum);
  out.insert(out.begin(), std::move(pool));
  return out;
}

std::string TransformerClassifier::pool_description() const {
  return "last layer's [CLS] attention to the words, mean over heads, renormalised without [CLS]";
}

}  // namespace attnviz::models
