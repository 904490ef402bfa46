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
      pool(nn::AttentionPoolingOptions{pool_dim(), nn::parse_score(cfg.score), cfg.attn_hidden}),
      head(pool_dim(), cfg.classes) {
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

Mat BiGruAttentionClassifier::forward(const TextBatch& batch, nn::Rng* dropout_rng, AttentionSink* sink) {
  // ids: [B*T] -> logits [B, C]
  batch_ = batch;
  const bool training = dropout_rng != nullptr;
  nn::Rng none(0);
  nn::Rng& rng = training ? *dropout_rng : none;
  const auto ids = training ? drop_words(batch.ids, cfg_.word_dropout, rng) : batch.ids;
  Mat e = drop_embed.forward(embed.forward(ids), rng, training);            // [B*T, E]
  Mat h = encoder.forward(e, batch.B, batch.T, batch.lengths);              // [B*T, 2H]
  if (cfg_.embed_skip) {
    Mat hk(h.rows(), pool_dim());                                           // [B*T, 2H + E]
    hk << h, e;
    for (int b = 0; b < batch.B; ++b)   // padding rows stay zero, as the encoder leaves them
      hk.block(static_cast<Eigen::Index>(b) * batch.T + batch.lengths[b], 0, batch.T - batch.lengths[b], hk.cols())
          .setZero();
    h = std::move(hk);
  }
  Mat p = pool.forward(h, batch.B, batch.T, batch.lengths, &weights_);      // [B, K]
  if (sink) sink->weights("pool", nn::AttentionWeights(weights_));
  return head.forward(drop_pool.forward(p, rng, training));                 // [B, C]
}

void BiGruAttentionClassifier::backward(const Mat& dlogits) {
  // undo head, pooling dropout, pooling, encoder, embedding dropout, embedding
  Mat dp = drop_pool.backward(head.backward(dlogits));   // [B, K]
  Mat dk = pool.backward(dp);                             // [B*T, K]
  const int H2 = 2 * cfg_.hidden;
  Mat de = encoder.backward(dk.leftCols(H2));             // [B*T, E]
  if (cfg_.embed_skip) de += dk.rightCols(cfg_.embed);    // the skip path (padding rows: weight 0)
  embed.backward(drop_embed.backward(de));
}

std::vector<AttentionTensor> BiGruAttentionClassifier::attention(int b) const {
  return {weights_.tensor(b, "pool", "query", "tokens", 1, batch_.lengths.at(b))};
}

std::string BiGruAttentionClassifier::pool_description() const {
  return std::string("attention pooling over the BiGRU states (") + cfg_.score + " score, one learned query)";
}

}  // namespace attnviz::models
