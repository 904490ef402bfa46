// Transformer translator: L pre-LN encoder blocks over the source, L pre-LN decoder blocks with
// causal self-attention and cross-attention over the encoder output, learned positions, and a
// final LayerNorm + linear output. Decoding re-runs the decoder over the whole prefix each step
// (sentences here are short, so no key/value cache is kept).
#include <attnviz/error.hpp>
#include <attnviz/models/translator.hpp>
#include <attnviz/engine/context_mixing.hpp>
#include <attnviz/engine/norm_attention.hpp>
#include <attnviz/engine/ops.hpp>
#include <attnviz/engine/relevance.hpp>
#include <attnviz/analysis/saliency.hpp>

#include <cmath>

namespace attnviz::models {

namespace {

using namespace attnviz::nn;

class TransformerTranslator : public Translator {
 public:
  Embedding src_emb, tgt_emb;
  PositionalEmbedding src_pos, tgt_pos;
  std::vector<EncoderBlock> enc;
  std::vector<DecoderBlock> dec;
  LayerNorm enc_ln, dec_ln;
  Linear out;

  TransformerTranslator(const TranslatorConfig& c, Vocabulary sv, Vocabulary tv) {
    config = c;
    config.attention = Score::ScaledDot;
    src_vocab = std::move(sv);
    tgt_vocab = std::move(tv);
    const int D = c.dim;
    if (c.heads <= 0 || D % c.heads != 0) throw UsageError("--dim must be a multiple of --heads");
    src_emb = Embedding(src_vocab.size(), D, Vocabulary::kPad);
    tgt_emb = Embedding(tgt_vocab.size(), D, Vocabulary::kPad);
    src_pos = PositionalEmbedding(c.max_len, D);
    tgt_pos = PositionalEmbedding(c.max_len, D);
    for (int l = 0; l < c.layers; ++l) {
      enc.emplace_back(EncoderBlockOptions{.dim = D, .heads = c.heads, .mlp_hidden = c.ff, .dropout = c.dropout,
                                           .activation = Activation::Relu});
      dec.emplace_back(DecoderBlockOptions{.dim = D, .heads = c.heads, .mlp_hidden = c.ff, .memory_dim = D,
                                           .dropout = c.dropout, .activation = Activation::Relu});
    }
    enc_ln = LayerNorm(D);
    dec_ln = LayerNorm(D);
    out = Linear(D, tgt_vocab.size());
    src_emb.collect(params_, "src_embed");
    src_pos.collect(params_, "src_pos");
    tgt_emb.collect(params_, "tgt_embed");
    tgt_pos.collect(params_, "tgt_pos");
    for (int l = 0; l < c.layers; ++l) enc[l].collect(params_, "encoder.layer" + std::to_string(l));
    enc_ln.collect(params_, "encoder.ln");
    for (int l = 0; l < c.layers; ++l) dec[l].collect(params_, "decoder.layer" + std::to_string(l));
    dec_ln.collect(params_, "decoder.ln");
    out.collect(params_, "decoder.out");
  }

  void init(std::uint64_t seed) override {
    Rng rng(seed);
    src_emb.init(rng, 0.1f);
    tgt_emb.init(rng, 0.1f);
    src_pos.init(rng, 0.1f);
    tgt_pos.init(rng, 0.1f);
    for (auto& b : enc) b.init(rng);
    for (auto& b : dec) b.init(rng);
    out.init(rng);
  }

  void check_len(int n) const {
    if (n > config.max_len)
      throw InputError("", "sequence of " + std::to_string(n) + " tokens is longer than the model's --max-len " +
                               std::to_string(config.max_len));
  }

  struct Memory {
    int B = 0, S = 0;
    std::vector<int> lengths;
    Mat mem;   // [B*S, D]
  };

  // inputs (optional): each encoder block's input [B*S, D] (for value zeroing).
  Memory encode(const std::vector<const std::vector<int>*>& src, std::vector<AttentionWeights>* weights, Rng* drop,
                std::vector<Mat>* inputs = nullptr) {
    Memory m;
    m.B = static_cast<int>(src.size());
    for (auto* s : src) m.S = std::max(m.S, static_cast<int>(s->size()) + 1);
    check_len(m.S);
    std::vector<int> ids(static_cast<size_t>(m.B) * m.S, Vocabulary::kPad);
    for (int b = 0; b < m.B; ++b) {
      for (size_t i = 0; i < src[b]->size(); ++i) ids[b * m.S + i] = (*src[b])[i];
      ids[b * m.S + src[b]->size()] = Vocabulary::kEos;
      m.lengths.push_back(static_cast<int>(src[b]->size()) + 1);
    }
    Mat x = src_pos.forward(src_emb.forward(ids), m.B, m.S);   // [B*S, D]
    if (weights) weights->assign(enc.size(), {});
    for (size_t l = 0; l < enc.size(); ++l) {
      if (inputs) inputs->push_back(x);
      x = enc[l].forward(x, m.B, m.S, {.key_lengths = m.lengths}, weights ? &(*weights)[l] : nullptr, drop);
    }
    m.mem = enc_ln.forward(x);
    return m;
  }

  // Decoder over input prefixes ins (each starting with <bos>), padded to T. Returns [B*T, D].
  // inputs (optional): each decoder block's input [B*T, D] (for the LRP relevance and value zeroing).
  Mat decode(const Memory& m, const std::vector<std::vector<int>>& ins, int T, std::vector<AttentionWeights>* self_w,
             std::vector<AttentionWeights>* cross_w, Rng* drop, std::vector<Mat>* inputs = nullptr) {
    const int B = m.B;
    check_len(T);
    std::vector<int> ids(static_cast<size_t>(B) * T, Vocabulary::kPad), lengths(B);
    for (int b = 0; b < B; ++b) {
      for (size_t i = 0; i < ins[b].size(); ++i) ids[b * T + i] = ins[b][i];
      lengths[b] = static_cast<int>(ins[b].size());
    }
    Mat y = tgt_pos.forward(tgt_emb.forward(ids), B, T);
    if (self_w) self_w->assign(dec.size(), {});
    if (cross_w) cross_w->assign(dec.size(), {});
    for (size_t l = 0; l < dec.size(); ++l) {
      DecoderWeights w;
      if (self_w) w.self = &(*self_w)[l];
      if (cross_w) w.cross = &(*cross_w)[l];
      if (inputs) inputs->push_back(y);
      y = dec[l].forward(y, m.mem, B, T, m.S, {.key_lengths = lengths, .causal = true}, {.key_lengths = m.lengths}, w, drop);
    }
    return dec_ln.forward(y);
  }

  BatchResult train_batch(const std::vector<const Example*>& batch, Rng* drop) override {
    std::vector<const std::vector<int>*> src;
    for (auto* ex : batch) src.push_back(&ex->src);
    Memory m = encode(src, nullptr, drop);
    const int B = m.B;
    int T = 0;
    for (auto* ex : batch) T = std::max(T, static_cast<int>(ex->tgt.size()) + 1);
    std::vector<std::vector<int>> ins(B);
    std::vector<int> targets(static_cast<size_t>(B) * T, -100);
    for (int b = 0; b < B; ++b) {
      const auto& y = batch[b]->tgt;
      ins[b].push_back(Vocabulary::kBos);
      ins[b].insert(ins[b].end(), y.begin(), y.end());
      for (size_t i = 0; i < y.size(); ++i) targets[b * T + i] = y[i];
      targets[b * T + y.size()] = Vocabulary::kEos;
    }
    Mat h = decode(m, ins, T, nullptr, nullptr, drop);
    auto ce = softmax_cross_entropy(out.forward(h), targets);
    // ---- backward: output, decoder stack (collecting d(memory)), encoder stack, embeddings
    Mat dy = dec_ln.backward(out.backward(ce.dlogits));
    Mat dmem = Mat::Zero(m.mem.rows(), m.mem.cols());
    for (int l = static_cast<int>(dec.size()) - 1; l >= 0; --l) {
      Mat dm;
      dy = dec[l].backward(dy, dm);
      dmem += dm;
    }
    tgt_emb.backward(tgt_pos.backward(dy));
    Mat dx = enc_ln.backward(dmem);
    for (int l = static_cast<int>(enc.size()) - 1; l >= 0; --l) dx = enc[l].backward(dx);
    src_emb.backward(src_pos.backward(dx));
    return {ce.loss, ce.count, ce.correct};
  }

  struct TfState : State {
    Memory m;
    std::vector<std::vector<int>> prefixes;   // [R] each starting with <bos> (the last token not yet fed)
  };

  std::unique_ptr<State> start(const std::vector<std::vector<int>>& src) override {
    std::vector<const std::vector<int>*> p;
    for (const auto& s : src) p.push_back(&s);
    auto st = std::make_unique<TfState>();
    st->m = encode(p, nullptr, nullptr);
    st->prefixes.assign(src.size(), {});
    return st;
  }

  void select(State& state, const std::vector<int>& rows) override {
    auto& st = static_cast<TfState&>(state);
    Memory m;
    m.B = static_cast<int>(rows.size());
    m.S = st.m.S;
    m.mem.resize(static_cast<Eigen::Index>(m.B) * m.S, st.m.mem.cols());
    std::vector<std::vector<int>> pre;
    for (int k = 0; k < m.B; ++k) {
      m.mem.middleRows(static_cast<Eigen::Index>(k) * m.S, m.S) = st.m.mem.middleRows(static_cast<Eigen::Index>(rows[k]) * m.S, m.S);
      m.lengths.push_back(st.m.lengths[rows[k]]);
      pre.push_back(st.prefixes[rows[k]]);
    }
    st.m = std::move(m);
    st.prefixes = std::move(pre);
  }

  Mat step(State& state, const std::vector<int>& prev) override {
    auto& st = static_cast<TfState&>(state);
    int T = 0;
    for (size_t r = 0; r < prev.size(); ++r) {
      st.prefixes[r].push_back(prev[r]);
      T = std::max(T, static_cast<int>(st.prefixes[r].size()));
    }
    Mat h = decode(st.m, st.prefixes, T, nullptr, nullptr, nullptr);  // [R*T, D]
    Mat last(static_cast<Eigen::Index>(prev.size()), h.cols());
    for (size_t r = 0; r < prev.size(); ++r) last.row(r) = h.row(static_cast<Eigen::Index>(r) * T + st.prefixes[r].size() - 1);
    return log_softmax_rows(out.apply(last));
  }

  Mat forward(const std::vector<const Example*>& batch, AttentionSink* sink) override {
    // -> logits [B*T, V]; sink: encoder self [B, H, S, S], decoder self [B, H, T, T], cross [B, H, T, S]
    // (with mixing: encoder.layerN.self.mixing [B, 1, S, S], decoder.layerN.self.mixing [B, 1, T, T],
    // decoder.layerN.cross.mixing [B, 1, T, S])
    std::vector<const std::vector<int>*> src;
    for (auto* ex : batch) src.push_back(&ex->src);
    std::vector<AttentionWeights> ew, sw, cw;
    std::vector<Mat> enc_inputs;
    const bool mixing = sink && sink->wants_mixing();
    Memory m = encode(src, sink ? &ew : nullptr, nullptr, mixing ? &enc_inputs : nullptr);
    // Value zeroing reads each encoder block's caches: before the decoder runs (it does not touch
    // them, but this keeps the dependency plain).
    std::vector<AttentionWeights> mix;
    for (size_t l = 0; mixing && l < enc.size(); ++l) mix.push_back(nn::value_zeroing(enc[l], enc_inputs[l], ew[l]));
    int T = 0;
    std::vector<std::vector<int>> ins;
    for (auto* ex : batch) {
      ins.push_back({Vocabulary::kBos});
      ins.back().insert(ins.back().end(), ex->tgt.begin(), ex->tgt.end());
      T = std::max(T, static_cast<int>(ins.back().size()));
    }
    std::vector<Mat> dec_inputs;
    Mat h = decode(m, ins, T, sink ? &sw : nullptr, sink ? &cw : nullptr, nullptr, mixing ? &dec_inputs : nullptr);
    // The decoder's value zeroing (self and cross per layer) from each block's caches of this pass.
    std::vector<nn::DecoderMixing> dmix;
    for (size_t l = 0; mixing && l < dec.size(); ++l) dmix.push_back(nn::value_zeroing(dec[l], dec_inputs[l], sw[l], cw[l]));
    if (sink) {
      // Norm-based attention reads each layer's cached values: every layer ran once in this pass.
      auto give = [&](const std::string& name, const nn::MultiHeadAttention& mha, AttentionWeights& w) {
        if (sink->wants_norms()) {
          nn::NormAttention n = nn::norm_attention(mha, w);
          sink->weights(name + ".norm", std::move(n.per_head));
          sink->weights(name + ".norm_sum", std::move(n.summed));
        }
        sink->weights(name, std::move(w));
      };
      for (size_t l = 0; l < enc.size(); ++l) {
        give("encoder.layer" + std::to_string(l) + ".self", enc[l].attn, ew[l]);
        if (mixing) sink->weights("encoder.layer" + std::to_string(l) + ".self.mixing", std::move(mix[l]));
      }
      for (size_t l = 0; l < dec.size(); ++l) {
        give("decoder.layer" + std::to_string(l) + ".self", dec[l].self_attn, sw[l]);
        if (mixing) sink->weights("decoder.layer" + std::to_string(l) + ".self.mixing", std::move(dmix[l].self));
      }
      for (size_t l = 0; l < dec.size(); ++l) {
        give("decoder.layer" + std::to_string(l) + ".cross", dec[l].cross_attn, cw[l]);
        if (mixing) sink->weights("decoder.layer" + std::to_string(l) + ".cross.mixing", std::move(dmix[l].cross));
      }
    }
    return out.forward(h);
  }

  std::vector<std::vector<AttentionTensor>> relevance(const std::vector<const Example*>& batch) override {
    // A teacher-forced forward keeping every block's input and weights, then per target step t one
    // backward (the attention gradients) and one LRP pass (the maps' relevance) from the logit of
    // each sentence's token at step t, all sentences at once (they do not interact).
    std::vector<const std::vector<int>*> src;
    for (auto* ex : batch) src.push_back(&ex->src);
    std::vector<AttentionWeights> ew, sw, cw;
    std::vector<Mat> enc_in, dec_in;
    Memory m = encode(src, &ew, nullptr, &enc_in);
    const int B = m.B, L = static_cast<int>(dec.size()), Le = static_cast<int>(enc.size());
    int T = 0;
    std::vector<std::vector<int>> ins;
    std::vector<int> tlen;   // target steps per sentence: the tokens + <eos>
    for (auto* ex : batch) {
      ins.push_back({Vocabulary::kBos});
      ins.back().insert(ins.back().end(), ex->tgt.begin(), ex->tgt.end());
      tlen.push_back(static_cast<int>(ins.back().size()));
      T = std::max(T, tlen.back());
    }
    Mat h = decode(m, ins, T, &sw, &cw, nullptr, &dec_in);
    out.forward(h);                                      // caches the head's input for LRP
    std::vector<std::vector<AttentionTensor>> res(B);
    std::vector<Mat> rel_cross(B), rel_self(B), lrp_cross(B), lrp_self(B);   // [T_b, S_b], [T_b, T_b]
    for (int b = 0; b < B; ++b) {
      rel_cross[b] = lrp_cross[b] = Mat::Zero(tlen[b], m.lengths[b]);
      rel_self[b] = lrp_self[b] = Mat::Zero(tlen[b], tlen[b]);
    }
    std::vector<AttentionWeights> ge(Le), gs(L), gc(L), re(Le);
    for (int t = 0; t < T; ++t) {
      Mat seed = Mat::Zero(static_cast<Eigen::Index>(B) * T, out.weight.value.cols());   // [B*T, V]
      for (int b = 0; b < B; ++b)
        if (t < tlen[b]) {
          const auto& y = batch[b]->tgt;
          seed(static_cast<Eigen::Index>(b) * T + t, t < static_cast<int>(y.size()) ? y[t] : Vocabulary::kEos) = 1.f;
        }
      // Gradients of that logit with respect to every attention map.
      Mat dy = dec_ln.backward(out.backward(seed));
      Mat dmem = Mat::Zero(m.mem.rows(), m.mem.cols());
      for (int l = L - 1; l >= 0; --l) {
        Mat dm;
        dy = dec[l].backward(dy, dm, {.self = &gs[l], .cross = &gc[l]});
        dmem += dm;
      }
      Mat dx = enc_ln.backward(dmem);
      for (int l = Le - 1; l >= 0; --l) dx = enc[l].backward(dx, &ge[l]);
      // LRP: the head by alpha = 1, beta = 0 (the final LayerNorms pass relevance through), the
      // decoder blocks from the top (their memory parts summed), then the encoder blocks.
      Mat r = nn::lrp_linear(out.x_, out.weight.value, seed);   // [B*T, D]
      Mat rmem = Mat::Zero(m.mem.rows(), m.mem.cols());
      std::vector<nn::DecoderRelevance> rd(L);
      for (int l = L - 1; l >= 0; --l) {
        rd[l] = nn::lrp_decoder_block(dec[l], dec_in[l], sw[l], cw[l], r);
        r = rd[l].target_input;
        rmem += rd[l].memory;
      }
      for (int l = Le - 1; l >= 0; --l) rmem = nn::lrp_encoder_block(enc[l], enc_in[l], ew[l], rmem, &re[l]);
      for (int b = 0; b < B; ++b) {
        if (t >= tlen[b]) continue;
        const int Sb = m.lengths[b], Tb = tlen[b];
        // Ā per map from the weights (ICCV 2021 eq. 5) and from their LRP relevance (CVPR 2021 eq. 13).
        std::vector<Mat> ae, as, ac, le, ls, lc;
        for (int l = 0; l < Le; ++l) {
          const AttentionTensor g = ge[l].tensor(b, "g", "", "", Sb, Sb);
          ae.push_back(gradient_weighted_heads(ew[l].tensor(b, "w", "", "", Sb, Sb), g));
          le.push_back(gradient_weighted_heads(re[l].tensor(b, "r", "", "", Sb, Sb), g));
        }
        for (int l = 0; l < L; ++l) {
          const AttentionTensor g1 = gs[l].tensor(b, "g", "", "", Tb, Tb), g2 = gc[l].tensor(b, "g", "", "", Tb, Sb);
          as.push_back(gradient_weighted_heads(sw[l].tensor(b, "w", "", "", Tb, Tb), g1));
          ac.push_back(gradient_weighted_heads(cw[l].tensor(b, "w", "", "", Tb, Sb), g2));
          ls.push_back(gradient_weighted_heads(rd[l].self.tensor(b, "r", "", "", Tb, Tb), g1));
          lc.push_back(gradient_weighted_heads(rd[l].cross.tensor(b, "r", "", "", Tb, Sb), g2));
        }
        const EncoderDecoderRelevance a = encoder_decoder_relevance(ae, as, ac), lr = encoder_decoder_relevance(le, ls, lc);
        rel_cross[b].row(t) = a.target_source.row(t);
        rel_self[b].row(t) = a.target.row(t);
        lrp_cross[b].row(t) = lr.target_source.row(t);
        lrp_self[b].row(t) = lr.target.row(t);
      }
    }
    params_.zero_grad();
    auto tensor = [](const std::string& name, const Mat& v, const char* qa, const char* ka) {
      AttentionTensor x(name, 1, static_cast<int>(v.rows()), static_cast<int>(v.cols()), qa, ka);
      for (int i = 0; i < x.queries; ++i)
        for (int j = 0; j < x.keys; ++j) x.at(0, i, j) = v(i, j);
      return x;
    };
    for (int b = 0; b < B; ++b) {
      res[b].push_back(tensor("decoder.relevance_cross", rel_cross[b], "target", "source"));
      res[b].push_back(tensor("decoder.relevance_self", rel_self[b], "target", "target_input"));
      res[b].push_back(tensor("decoder.lrp_relevance_cross", lrp_cross[b], "target", "source"));
      res[b].push_back(tensor("decoder.lrp_relevance_self", lrp_self[b], "target", "target_input"));
    }
    return res;
  }
};

}  // namespace

std::unique_ptr<Translator> make_transformer_translator(const TranslatorConfig& c, Vocabulary s, Vocabulary t) {
  return std::make_unique<TransformerTranslator>(c, std::move(s), std::move(t));
}

}  // namespace attnviz::models
