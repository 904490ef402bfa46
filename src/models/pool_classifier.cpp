// The attention-pooling MNIST baseline: per-patch MLP encoder, one learned query, linear head.
#include <attnviz/models/pool_classifier.hpp>

namespace attnviz::models {

PoolClassifier::PoolClassifier(const MnistConfig& cfg, std::uint64_t seed) : MnistModel(cfg) {
  nn::PatchEmbeddingOptions po;
  po.height = po.width = cfg.image;
  po.patch = cfg.patch;
  po.dim = cfg.dim;
  po.cls_token = false;
  po.positions = true;
  embed = nn::PatchEmbedding(po);
  fc = nn::Linear(cfg.dim, cfg.dim);
  nn::AttentionPoolingOptions ao;
  ao.dim = cfg.dim;
  ao.hidden = cfg.dim;
  ao.score = nn::Score::Additive;
  pool = nn::AttentionPooling(ao);
  head = nn::Linear(cfg.dim, cfg.classes);
  nn::Rng rng(seed);
  embed.init(rng);
  fc.init(rng);
  pool.init(rng);
  head.init(rng);
  embed.collect(params_, "encoder.embed");
  fc.collect(params_, "encoder.fc");
  pool.collect(params_, "pool");
  head.collect(params_, "head");
}

Mat PoolClassifier::forward(const Mat& images, AttentionSink* sink) {
  // regions: [B*P, D] = GELU(FC(GELU(embed(images)))); pooled: [B, D]; logits: [B, classes]
  const int B = static_cast<int>(images.rows()), P = cfg_.patches();
  Mat r = act2.forward(fc.forward(act1.forward(embed.forward(images))));
  Mat logits = head.forward(pool.forward(r, B, P, {}, &weights_));
  if (sink) sink->weights("pool", nn::AttentionWeights(weights_));
  return logits;
}

void PoolClassifier::backward(const Mat& dlogits, AttentionSink*) {
  embed.backward(act1.backward(fc.backward(act2.backward(pool.backward(head.backward(dlogits))))));
}

std::vector<AttentionTensor> PoolClassifier::attention(int b) const {
  if (b < 0 || b >= weights_.B) return {};
  return {weights_.tensor(b, "pool", "query", "tokens")};
}

std::vector<AttentionTensor> PoolClassifier::attention_grads(int) const { return {}; }

}  // namespace attnviz::models
