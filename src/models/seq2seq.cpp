// RNN seq2seq translator: bidirectional GRU encoder, GRU decoder with one of four attention
// scores and Luong-style input feeding (the attentional state of step t-1 is part of the input of
// step t, so the model knows what it attended to before).
//
// Step t (y_0 = <bos>, h~_0 = 0, s_0 = [fwd final | bwd final] of the encoder):
//   s_t  = GRU([E y_{t-1} ; h~_{t-1}], s_{t-1})          [B, 2H]
//   a_t  = softmax(score(q_t, enc_i)),  c_t = sum_i a_ti enc_i   (additive: v^T tanh(W q + U enc + b);
//          query q_t = s_t ("current", Luong) or s_{t-1} ("previous", Bahdanau: the state before
//          it has read y_{t-1});
//          dot: s.enc; general: s W enc; scaled-dot: s.enc / sqrt(2H))
//   h~_t = tanh(Wc [s_t ; c_t] + bc)                      [B, 2H]
//   p(y_t) = softmax(Wo h~_t + bo)                        [B, V]
// All four scores share this decoder (Luong et al. 2015, with "concat" = Bahdanau's additive score
// on the current state), so a comparison between them changes the score function only.
//
// Training loss: mean cross-entropy + the coverage penalty (config.coverage = lambda; Xu et al.
// 2015, "doubly stochastic attention"; Cohn et al. 2016, "global fertility"):
//   lambda / N * sum_b sum_i (1 - C_bi)^2,   C_bi = sum_t a_bti over the real target steps of b
// (i runs over the source tokens and <eos>, N = target tokens in the batch). Its gradient
// d/d a_bti = -2 lambda / N (1 - C_bi) enters each step's attention backward as `dweights`.
// Guided alignment (config.guide = lambda_g; Chen et al. 2016, Garg et al. 2019) adds
//   lambda_g / G * sum over guided rows (b, t) of -sum_i g_bti log a_bti
// (g_bt: the links of target token t in Example::guide, 1/links each; G = guided rows), whose
// gradient d/d a_bti = -lambda_g / G * g_bti / a_bti joins the coverage one in `dweights`.
#include <attnviz/error.hpp>
#include <attnviz/models/translator.hpp>
#include <attnviz/engine/ops.hpp>

#include <algorithm>
#include <cmath>

namespace attnviz::models {

namespace {

using namespace attnviz::nn;

// Rows t of a [B*T, D] matrix for every sequence: [B, D].
Mat gather_t(const Mat& m, int B, int T, int t) {
  Mat out(B, m.cols());
  for (int b = 0; b < B; ++b) out.row(b) = m.row(static_cast<Eigen::Index>(b) * T + t);
  return out;
}
void scatter_t(Mat& m, const Mat& rows, int B, int T, int t) {
  for (int b = 0; b < B; ++b) m.row(static_cast<Eigen::Index>(b) * T + t) = rows.row(b);
}

Mat hcat(const Mat& a, const Mat& b) {
  Mat out(a.rows(), a.cols() + b.cols());
  out.leftCols(a.cols()) = a;
  out.rightCols(b.cols()) = b;
  return out;
}

class RnnTranslator : public Translator {
 public:
  Embedding src_emb, tgt_emb;
  BiGruEncoder encoder;
  GruCell decoder;
  ScoredAttention attn;
  Linear combine, out;

  RnnTranslator(const TranslatorConfig& c, Vocabulary sv, Vocabulary tv) {
    config = c;
    src_vocab = std::move(sv);
    tgt_vocab = std::move(tv);
    const int E = c.embed, H = c.hidden, D = 2 * H;
    src_emb = Embedding(src_vocab.size(), E, Vocabulary::kPad);
    tgt_emb = Embedding(tgt_vocab.size(), E, Vocabulary::kPad);
    encoder = BiGruEncoder(E, H);
    decoder = GruCell(E + D, D);
    attn = ScoredAttention({.score = c.attention, .query_dim = D, .key_dim = D, .hidden = D});
    combine = Linear(2 * D, D);
    out = Linear(D, tgt_vocab.size());
    src_emb.collect(params_, "src_embed");
    tgt_emb.collect(params_, "tgt_embed");
    encoder.collect(params_, "encoder");
    decoder.collect(params_, "decoder.gru");
    attn.collect(params_, "decoder.attn");
    combine.collect(params_, "decoder.combine");
    out.collect(params_, "decoder.out");
  }

  bool previous_query() const { return config.query == "previous"; }

  void init(std::uint64_t seed) override {
    Rng rng(seed);
    src_emb.init(rng, 0.1f);
    tgt_emb.init(rng, 0.1f);
    encoder.init(rng);
    decoder.init(rng);
    attn.init(rng);
    combine.init(rng);
    out.init(rng);
  }

  // Source ids + <eos>, padded: ids [B*S], lengths [B].
  static void pack_source(const std::vector<const std::vector<int>*>& src, std::vector<int>& ids,
                          std::vector<int>& lengths, int& S) {
    const int B = static_cast<int>(src.size());
    S = 0;
    for (auto* s : src) S = std::max(S, static_cast<int>(s->size()) + 1);
    ids.assign(static_cast<size_t>(B) * S, Vocabulary::kPad);
    lengths.resize(B);
    for (int b = 0; b < B; ++b) {
      const auto& s = *src[b];
      for (size_t i = 0; i < s.size(); ++i) ids[b * S + i] = s[i];
      ids[b * S + s.size()] = Vocabulary::kEos;
      lengths[b] = static_cast<int>(s.size()) + 1;
    }
  }

  struct Encoded {
    int B = 0, S = 0;
    std::vector<int> lengths;
    Mat keys;    // [B*S, 2H]
    Mat s0;      // [B, 2H]
  };
  Encoded encode(const std::vector<const std::vector<int>*>& src) {
    Encoded e;
    std::vector<int> ids;
    pack_source(src, ids, e.lengths, e.S);
    e.B = static_cast<int>(src.size());
    Mat x = src_emb.forward(ids);                       // [B*S, E]
    e.keys = encoder.forward(x, e.B, e.S, e.lengths);   // [B*S, 2H]
    e.s0 = encoder.final_state();                       // [B, 2H]
    return e;
  }

  // Teacher-forced decoder over T steps; caches per step for backward. weights: [B, 1, T, S].
  struct Run {
    int B = 0, T = 0;
    std::vector<int> in_ids, out_ids;          // [B*T]
    Mat emb;                                   // [B*T, E]
    std::vector<Mat> dec_in;                   // [T] of [B, E + 2H]
    std::vector<GruCell::Cache> gru;           // [T]
    std::vector<ScoredAttention::Cache> att;   // [T]
    std::vector<Mat> comb_in;                  // [T] of [B, 4H]
    Mat ht;                                    // [B*T, 2H] attentional states
  };
  void run_decoder(const Encoded& e, const std::vector<const std::vector<int>*>& tgt, Run& r,
                   AttentionWeights* weights) {
    const int B = e.B, D = 2 * config.hidden;
    int T = 0;
    for (auto* t : tgt) T = std::max(T, static_cast<int>(t->size()) + 1);
    r.B = B;
    r.T = T;
    r.in_ids.assign(static_cast<size_t>(B) * T, Vocabulary::kPad);
    r.out_ids.assign(static_cast<size_t>(B) * T, -100);
    for (int b = 0; b < B; ++b) {
      const auto& y = *tgt[b];
      r.in_ids[b * T] = Vocabulary::kBos;
      for (size_t i = 0; i < y.size(); ++i) {
        r.in_ids[b * T + i + 1] = y[i];
        r.out_ids[b * T + i] = y[i];
      }
      r.out_ids[b * T + y.size()] = Vocabulary::kEos;
    }
    r.emb = tgt_emb.forward(r.in_ids);  // [B*T, E]
    r.dec_in.assign(T, {});
    r.gru.assign(T, {});
    r.att.assign(T, {});
    r.comb_in.assign(T, {});
    r.ht.resize(static_cast<Eigen::Index>(B) * T, D);
    attn.set_keys(e.keys, B, e.S, e.lengths);
    if (weights) weights->resize(B, 1, T, e.S);
    Mat s = e.s0, h = Mat::Zero(B, D);
    AttentionWeights wt;
    for (int t = 0; t < T; ++t) {
      r.dec_in[t] = hcat(gather_t(r.emb, B, T, t), h);               // [B, E + 2H]
      Mat s_prev = s;
      s = decoder.step(decoder.project_inputs(r.dec_in[t]), s, &r.gru[t]);
      Mat c = attn.forward(previous_query() ? s_prev : s, 1, r.att[t], weights ? &wt : nullptr);  // [B, 2H]
      if (weights)
        for (int b = 0; b < B; ++b)
          std::copy(wt.at(b, 0), wt.at(b, 0) + e.S, weights->at(b, 0) + static_cast<size_t>(t) * e.S);
      r.comb_in[t] = hcat(s, c);                                      // [B, 4H]
      h = combine.apply(r.comb_in[t]).array().tanh().matrix();        // [B, 2H]
      scatter_t(r.ht, h, B, T, t);
    }
  }

  BatchResult train_batch(const std::vector<const Example*>& batch, Rng*) override {
    std::vector<const std::vector<int>*> src, tgt;
    for (auto* ex : batch) src.push_back(&ex->src), tgt.push_back(&ex->tgt);
    Encoded e = encode(src);
    Run r;
    run_decoder(e, tgt, r, nullptr);
    const int B = r.B, T = r.T, D = 2 * config.hidden, E = config.embed;
    Mat logits = out.forward(r.ht);  // [B*T, V]
    auto ce = softmax_cross_entropy(logits, r.out_ids);
    // coverage penalty: C = sum over each sentence's target steps (incl. <eos>) of the weights
    double penalty = 0;
    Mat dcov;   // d(penalty)/d(a_bti) for every real step t of b: [B, S]
    std::vector<int> steps(B);
    for (int b = 0; b < B; ++b) steps[b] = static_cast<int>(tgt[b]->size()) + 1;
    if (config.coverage > 0 && ce.count > 0) {
      Mat C = Mat::Zero(B, e.S);
      for (int t = 0; t < T; ++t)
        for (int b = 0; b < B; ++b)
          if (t < steps[b]) C.row(b) += r.att[t].w.row(b);
      dcov = Mat::Zero(B, e.S);
      const double lambda_n = static_cast<double>(config.coverage) / ce.count;
      for (int b = 0; b < B; ++b)
        for (int i = 0; i < e.lengths[b]; ++i) {
          const double gap = 1.0 - C(b, i);
          penalty += lambda_n * gap * gap;
          dcov(b, i) = static_cast<float>(-2.0 * lambda_n * gap);
        }
    }
    // guided alignment: per step t, d(guide)/d(a_bt) [B, S] for the sentences with links on row t
    double guide = 0;
    std::vector<Mat> dguide;
    if (config.guide > 0) {
      std::vector<std::vector<std::vector<int>>> rows(B);   // [b][t] linked source tokens
      int G = 0;
      for (int b = 0; b < B; ++b) {
        const int Tb = static_cast<int>(tgt[b]->size()), Sb = static_cast<int>(src[b]->size());
        rows[b].resize(Tb);
        for (const auto& l : batch[b]->guide.links)
          if (l.source >= 0 && l.source < Sb && l.target >= 0 && l.target < Tb) rows[b][l.target].push_back(l.source);
        for (auto& r : rows[b]) {
          std::sort(r.begin(), r.end());
          r.erase(std::unique(r.begin(), r.end()), r.end());
          G += !r.empty();
        }
      }
      if (G > 0) {
        dguide.assign(T, Mat());
        const double lg = static_cast<double>(config.guide) / G;
        for (int t = 0; t < T; ++t)
          for (int b = 0; b < B; ++b) {
            if (t >= static_cast<int>(rows[b].size()) || rows[b][t].empty()) continue;
            if (!dguide[t].size()) dguide[t] = Mat::Zero(B, e.S);
            const double g = 1.0 / rows[b][t].size();
            for (int i : rows[b][t]) {
              const double a = std::max(static_cast<double>(r.att[t].w(b, i)), 1e-12);
              guide -= lg * g * std::log(a);
              dguide[t](b, i) = static_cast<float>(-lg * g / a);
            }
          }
      }
    }
    // ---- backward: output layer, then the decoder steps in reverse, then the encoder.
    Mat dht_all = out.backward(ce.dlogits);  // [B*T, 2H]
    Mat demb = Mat::Zero(static_cast<Eigen::Index>(B) * T, E);
    Mat dh_next = Mat::Zero(B, D), ds_next = Mat::Zero(B, D);
    Mat dw;   // this step's share of dcov: rows of sentences that have ended are zero
    for (int t = T - 1; t >= 0; --t) {
      dw.resize(0, 0);
      if (dcov.size()) {
        dw = dcov;
        for (int b = 0; b < B; ++b)
          if (t >= steps[b]) dw.row(b).setZero();
      }
      if (!dguide.empty() && dguide[t].size()) {
        if (dw.size()) dw += dguide[t];
        else dw = dguide[t];
      }
      // h~_t = tanh(Wc [s;c] + b): undo tanh, then the combine layer
      Mat h = gather_t(r.ht, B, T, t);
      Mat dh = gather_t(dht_all, B, T, t) + dh_next;
      Mat dpre = dh.cwiseProduct((1.f - h.array().square()).matrix());
      Mat dsc = combine.backward(r.comb_in[t], dpre);  // [B, 4H]
      Mat ds = dsc.leftCols(D) + ds_next;
      Mat dq = attn.backward(dsc.rightCols(D), r.att[t], dw.size() ? &dw : nullptr);  // d(query) [B, 2H]
      if (!previous_query()) ds += dq;
      // s_t = GRU(in_t, s_{t-1})
      Mat dgx;
      ds_next = decoder.backward_step(r.gru[t], ds, dgx);
      if (previous_query()) ds_next += dq;
      Mat din = decoder.backward_inputs(r.dec_in[t], dgx);  // [B, E + 2H]
      scatter_t(demb, din.leftCols(E), B, T, t);
      dh_next = din.rightCols(D);
    }
    tgt_emb.backward(demb);
    Mat dkeys = attn.keys_backward();               // [B*S, 2H]
    Mat dx = encoder.backward(dkeys, ds_next);      // ds_next is now d(s_0) = d(final state)
    src_emb.backward(dx);
    return {.loss = ce.loss, .tokens = ce.count, .correct = ce.correct, .penalty = penalty, .guide = guide};
  }

  struct RnnState : State {
    Encoded enc;
    Mat s, h;   // [R, 2H]
  };

  std::unique_ptr<State> start(const std::vector<std::vector<int>>& src) override {
    std::vector<const std::vector<int>*> p;
    for (const auto& s : src) p.push_back(&s);
    auto st = std::make_unique<RnnState>();
    st->enc = encode(p);
    st->s = st->enc.s0;
    st->h = Mat::Zero(st->enc.B, 2 * config.hidden);
    return st;
  }

  void select(State& state, const std::vector<int>& rows) override {
    auto& st = static_cast<RnnState&>(state);
    const int R = static_cast<int>(rows.size()), S = st.enc.S;
    Encoded e;
    e.B = R;
    e.S = S;
    e.keys.resize(static_cast<Eigen::Index>(R) * S, st.enc.keys.cols());
    e.s0.resize(R, st.enc.s0.cols());
    Mat s(R, st.s.cols()), h(R, st.h.cols());
    for (int k = 0; k < R; ++k) {
      const int r = rows[k];
      e.keys.middleRows(static_cast<Eigen::Index>(k) * S, S) = st.enc.keys.middleRows(static_cast<Eigen::Index>(r) * S, S);
      e.lengths.push_back(st.enc.lengths[r]);
      e.s0.row(k) = st.enc.s0.row(r);
      s.row(k) = st.s.row(r);
      h.row(k) = st.h.row(r);
    }
    st.enc = std::move(e);
    st.s = std::move(s);
    st.h = std::move(h);
  }

  Mat step(State& state, const std::vector<int>& prev) override {
    auto& st = static_cast<RnnState&>(state);
    attn.set_keys(st.enc.keys, st.enc.B, st.enc.S, st.enc.lengths);
    Mat in = hcat(tgt_emb.weight.value(prev, Eigen::all), st.h);  // [R, E + 2H]
    Mat s_prev = st.s;
    st.s = decoder.step(decoder.project_inputs(in), st.s, nullptr);
    ScoredAttention::Cache cache;
    Mat c = attn.forward(previous_query() ? s_prev : st.s, 1, cache);
    st.h = combine.apply(hcat(st.s, c)).array().tanh().matrix();
    return log_softmax_rows(out.apply(st.h));
  }

  Mat forward(const std::vector<const Example*>& batch, AttentionSink* sink) override {
    // -> logits [B*T, V]; sink: "decoder.layer0.cross" [B, 1, T, S]
    std::vector<const std::vector<int>*> src, tgt;
    for (auto* ex : batch) src.push_back(&ex->src), tgt.push_back(&ex->tgt);
    Encoded e = encode(src);
    Run r;
    AttentionWeights w;
    run_decoder(e, tgt, r, sink ? &w : nullptr);
    if (sink) sink->weights("decoder.layer0.cross", std::move(w));
    return out.apply(r.ht);
  }
};

}  // namespace

std::unique_ptr<Translator> make_rnn_translator(const TranslatorConfig& c, Vocabulary s, Vocabulary t) {
  return std::make_unique<RnnTranslator>(c, std::move(s), std::move(t));
}

}  // namespace attnviz::models
