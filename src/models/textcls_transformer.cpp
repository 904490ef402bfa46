// The transformer-encoder text classifier: [CLS] + words, pre-LN blocks, classification from [CLS].
#include "models/textcls_arch.hpp"
#include "models/attention_extras.hpp"

#include <attnviz/engine/relevance.hpp>
#include <attnviz/error.hpp>

#include <stdexcept>

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
  xs_.clear();
  grads_.clear();
  rel_.clear();
  rin_ = Mat();
  for (size_t l = 0; l < blocks.size(); ++l) {
    Mat in = sink && sink->wants_mixing() ? x : Mat();   // value zeroing reruns the block's second half from it
    if (sink) xs_.push_back(x);                          // what explain() needs besides the blocks' caches
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

bool TransformerClassifier::explain(const std::vector<int>& klass) {
  // klass: [B] class per text of the last forward
  if (xs_.size() != blocks.size() || weights_.size() != blocks.size())
    throw std::logic_error("TransformerClassifier::explain needs a forward pass with an attention sink first");
  if (static_cast<int>(klass.size()) != B_) throw std::invalid_argument("TransformerClassifier::explain: one class per text");
  Mat seed = Mat::Zero(B_, cfg_.classes);   // [B, C] one-hot rows: d(logit)/d(logits) and the LRP seed
  for (int b = 0; b < B_; ++b) {
    if (klass[b] < 0 || klass[b] >= cfg_.classes) throw std::invalid_argument("TransformerClassifier::explain: class out of range");
    seed(b, klass[b]) = 1.f;
  }
  // Gradients: the backward of backward(), keeping d(logit)/d(weights) per layer.
  grads_.assign(blocks.size(), {});
  params_.zero_grad();
  Mat dcls = drop_pool.backward(head.backward(seed));                 // [B, D]
  Mat dx = Mat::Zero(static_cast<Eigen::Index>(B_) * T1_, cfg_.dim);  // [B*T1, D]
  for (int b = 0; b < B_; ++b) dx.row(static_cast<Eigen::Index>(b) * T1_) = dcls.row(b);
  dx = norm.backward(dx);
  for (size_t l = blocks.size(); l-- > 0;) dx = blocks[l].backward(dx, &grads_[l]);
  params_.zero_grad();
  // Relevance: the head by alpha = 1, beta = 0 (its input is the [CLS] rows after the final LN,
  // which passes relevance through), then every block from the top.
  const Mat rz = nn::lrp_linear(head.x_, head.weight.value, seed);    // [B, D]
  Mat r = Mat::Zero(static_cast<Eigen::Index>(B_) * T1_, cfg_.dim);   // [B*T1, D]
  for (int b = 0; b < B_; ++b) r.row(static_cast<Eigen::Index>(b) * T1_) = rz.row(b);
  rel_.assign(blocks.size(), {});
  for (size_t l = blocks.size(); l-- > 0;) r = nn::lrp_encoder_block(blocks[l], xs_[l], weights_[l], r, &rel_[l]);
  rin_ = std::move(r);
  return true;
}

namespace {
std::vector<AttentionTensor> layer_tensors(const std::vector<nn::AttentionWeights>& w, int b, int n) {
  std::vector<AttentionTensor> out;
  for (size_t l = 0; l < w.size(); ++l)
    out.push_back(w[l].tensor(b, "encoder.layer" + std::to_string(l) + ".self", "tokens_cls", "tokens_cls", n, n));
  return out;
}
}  // namespace

std::vector<AttentionTensor> TransformerClassifier::attention_grads(int b) const {
  return layer_tensors(grads_, b, lengths_.at(b) + 1);
}
std::vector<AttentionTensor> TransformerClassifier::attention_relevance(int b) const {
  return layer_tensors(rel_, b, lengths_.at(b) + 1);
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
