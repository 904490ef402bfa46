// The bidirectional-GRU text classifier with attention pooling over the words.
#include "models/textcls_arch.hpp"

#include <attnviz/error.hpp>

namespace attnviz::models {

BiGruAttentionClassifier::BiGruAttentionClassifier(const TextClsConfig& cfg, Vocabulary vocab,
                                                   std::vector<std::string> labels)
    : TextClassifier(cfg, std::move(vocab), std::move(labels)),
      embed(cfg.vocab, cfg.embed, Vocabulary::kPad),
      drop_embed(cfg.dropout),
      drop_pool(cfg.dropout),
      encoder(cfg.embed, cfg.hidden),
      pool(nn::AttentionPoolingOptions{2 * cfg.hidden, nn::parse_score(cfg.score), cfg.attn_hidden}),
      head(2 * cfg.hidden, cfg.classes) {
  embed.collect(params_, "embed");
  encoder.collect(params_, "encoder");
  pool.collect(params_, "pool");
  head.collect(params_, "head");
}

void BiGruAttentionClassifier::init(nn::Rng& rng) {
  embed.init(rng, 0.1f);
  encoder.init(rng);
  pool.init(rng);
  head.init(rng);
}

Mat BiGruAttentionClassifier::forward(const TextBatch& batch, nn::Rng* dropout_rng) {
  // ids: [B*T] -> logits [B, C]
  batch_ = batch;
  const bool training = dropout_rng != nullptr;
  nn::Rng none(0);
  nn::Rng& rng = training ? *dropout_rng : none;
  Mat e = drop_embed.forward(embed.forward(batch.ids), rng, training);     // [B*T, E]
  Mat h = encoder.forward(e, batch.B, batch.T, batch.lengths);              // [B*T, 2H]
  Mat p = pool.forward(h, batch.B, batch.T, batch.lengths, &weights_);      // [B, 2H]
  return head.forward(drop_pool.forward(p, rng, training));                 // [B, C]
}

void BiGruAttentionClassifier::backward(const Mat& dlogits) {
  // undo head, pooling dropout, pooling, encoder, embedding dropout, embedding
  Mat dp = drop_pool.backward(head.backward(dlogits));   // [B, 2H]
  Mat dh = pool.backward(dp);                             // [B*T, 2H]
  Mat de = encoder.backward(dh);                          // [B*T, E]
  embed.backward(drop_embed.backward(de));
}

std::vector<AttentionTensor> BiGruAttentionClassifier::attention(int b) const {
  return {weights_.tensor(b, "pool", "query", "tokens", 1, batch_.lengths.at(b))};
}

std::string BiGruAttentionClassifier::pool_description() const {
  return std::string("attention pooling over the BiGRU states (") + cfg_.score + " score, one learned query)";
}

}  // namespace attnviz::models
