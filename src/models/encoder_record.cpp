// Records of pretrained encoders: a sentence (pair) through BERT-family models, an image through a ViT.
#include <attnviz/error.hpp>
#include <attnviz/models/encoder.hpp>
#include <attnviz/text/hf_tokenizer.hpp>
#include <attnviz/text/lm_tokenizer.hpp>

#include "models/attention_extras.hpp"

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

namespace attnviz::models {

namespace {

// A sink that turns every tensor into a record tensor over one token axis.
class RecordSink : public AttentionSink {
 public:
  RecordSink(AttentionRecord& r, const RecordOptions& what) : r_(r), norms_(what.norms), mixing_(what.mixing) {}
  void weights(const std::string& name, nn::AttentionWeights&& w, int) override {
    AttentionTensor t = w.tensor(0, name, "tokens", "tokens");
    // The model hands out "<name>.norm", ".norm_sum", ".mixing", then "<name>": keep each layer's
    // weights first.
    auto ends = [&](const char* suffix) {
      const size_t n = std::char_traits<char>::length(suffix);
      return name.size() > n && name.compare(name.size() - n, n, suffix) == 0;
    };
    const bool extra = ends(".norm") || ends(".norm_sum") || ends(".mixing");
    if (extra) pending_.push_back(std::move(t));
    else {
      r_.tensors.push_back(std::move(t));
      for (auto& p : pending_) r_.tensors.push_back(std::move(p));
      pending_.clear();
    }
  }
  bool wants_norms() const override { return norms_; }
  bool wants_mixing() const override { return mixing_; }

 private:
  AttentionRecord& r_;
  bool norms_, mixing_;
  std::vector<AttentionTensor> pending_;
};

void check_size(const EncoderConfig& c, int T, double max_mib, const RecordOptions& what) {
  // weights [L, H, T, T], with norms also [L, H, T, T] + [L, 1, T, T], with mixing [L, 1, T, T] + the rollout
  // with relevance also the gradients and the relevance [L, H, T, T]
  const double per_layer = (what.norms ? 2.0 * c.heads + 1 : c.heads) + (what.mixing ? 1 : 0) + (what.relevance ? 2.0 * c.heads : 0);
  const double maps = c.layers * per_layer + (what.mixing ? 1 : 0);
  const double mib = maps * T * static_cast<double>(T) * 4 / (1024.0 * 1024.0);
  if (mib > max_mib)
    throw UsageError(fmt::format("a record of {} layers x {} heads x {}x{} tokens needs {:.0f} MiB, above --max-record-mib {:.0f}",
                                 c.layers, c.heads, T, T, mib, max_mib));
}

// The label name of class k (its id when id2label does not name it).
std::string label_name(const LoadedEncoder& enc, Eigen::Index k) {
  return k < static_cast<Eigen::Index>(enc.label_names.size()) && !enc.label_names[k].empty() ? enc.label_names[k]
                                                                                             : std::to_string(k);
}

// Chefer et al. (2021): each map's gradient and relevance from an explanation, into the record.
void add_explanation(AttentionRecord& r, const LoadedEncoder& enc, const EncoderModel::Explanation& e, const std::string& stack) {
  for (size_t l = 0; l < e.gradients.size(); ++l) {
    const std::string name = stack + ".layer" + std::to_string(l) + ".self";
    r.gradients.push_back(e.gradients[l].tensor(0, name, "tokens", "tokens"));
    r.relevance.push_back(e.relevance[l].tensor(0, name, "tokens", "tokens"));
  }
  r.metadata["explained"] = std::to_string(e.target);
  r.metadata["gradients"] = "d(logit " + label_name(enc, e.target) + ")/d(attention)";
  r.metadata["relevance"] = "LRP of logit " + label_name(enc, e.target) +
                            " (Chefer et al. 2021: alpha=1 beta=0 linear, normalised adds and products)";
}

// Softmax probability of the largest logit, and its index.
double top_probability(const Mat& logits, Eigen::Index& best) {
  logits.row(0).maxCoeff(&best);
  const double m = logits.maxCoeff();
  double z = 0;
  for (Eigen::Index i = 0; i < logits.cols(); ++i) z += std::exp(logits(0, i) - m);
  return 1.0 / z;
}

}  // namespace

AttentionRecord record_encoder_text(const LoadedEncoder& enc, const std::string& text, const std::string* pair, int threads,
                                    double max_record_mib, const RecordOptions& what, int explain) {
  const EncoderConfig& cfg = enc.model->config();
  if (what.relevance && cfg.labels <= 0)
    throw UsageError(fmt::format("{} has no sequence-classification head: --record relevance explains a label", cfg.name));
  if (what.relevance && (explain < -1 || explain >= cfg.labels))
    throw UsageError(fmt::format("--class {} outside the model's {} labels (0..{})", explain, cfg.labels, cfg.labels - 1));
  std::vector<int> ids, types;
  std::vector<std::string> tokens;
  std::string scheme;
  if (enc.wordpiece) {
    Encoding e = enc.wordpiece->encode(text, pair);
    ids = std::move(e.ids);
    types = std::move(e.type_ids);
    tokens = std::move(e.tokens);
    scheme = "wordpiece";
  } else if (enc.bpe) {
    if (enc.bos < 0 || enc.eos < 0) throw InputError(cfg.name, "the RoBERTa vocabulary has no <s> or </s>");
    auto add = [&](const std::string& s) {
      for (int id : enc.bpe->encode(s, false)) ids.push_back(id);
    };
    ids.push_back(enc.bos);
    add(text);
    ids.push_back(enc.eos);
    if (pair) {
      ids.push_back(enc.eos);
      add(*pair);
      ids.push_back(enc.eos);
    }
    types.assign(ids.size(), 0);
    for (int id : ids) tokens.push_back(enc.bpe->display(id));
    scheme = "bpe";
  } else {
    throw InputError(cfg.name, "the model folder has no tokenizer (vocab.txt, tokenizer.json or vocab.json + merges.txt)");
  }
  const int T = static_cast<int>(ids.size());
  if (cfg.position_offset + T > cfg.positions)
    throw UsageError(fmt::format("{} tokens exceed the model's {} positions", T, cfg.positions - cfg.position_offset));
  check_size(cfg, T, max_record_mib, what);
  AttentionRecord r;
  RecordSink sink(r, what);
  EncoderForwardOptions opt;
  opt.threads = threads;
  enc.model->forward_tokens(ids, types, &sink, opt);
  if (what.mixing) add_mixing_rollout(r.tensors, "encoder");
  if (what.relevance) {   // the head's logits come from the explanation's forward pass
    const EncoderModel::Explanation e = enc.model->explain_tokens(ids, types, explain);
    add_explanation(r, enc, e, "encoder");
    Eigen::Index best = 0;
    const double p = top_probability(e.logits, best);
    r.metadata["prediction"] = label_name(enc, best);
    r.metadata["score"] = fmt::format("{:.6f}", p);
  }
  r.tokens["tokens"] = tokens;
  r.metadata["model"] = cfg.name;
  r.metadata["architecture"] = encoder_family_name(cfg.family);
  r.metadata["attention"] = "scaled-dot";
  r.metadata["token_ids"] = nlohmann::json(ids).dump();
  r.metadata["type_ids"] = nlohmann::json(types).dump();
  r.metadata["subwords"] = scheme;
  if (pair) {
    int first = 0;
    while (first < T && types[first] == 0) ++first;
    if (scheme == "bpe") first = static_cast<int>(std::find(ids.begin() + 1, ids.end(), enc.eos) - ids.begin()) + 1;
    r.metadata["sentence_b_start"] = std::to_string(first);
  }
  return r;
}

namespace {

// PIL's resampling for one axis (Image.resize with BILINEAR): a triangle filter whose support
// grows with the shrink factor, so shrinking averages (antialiasing) instead of skipping pixels.
struct Taps {
  std::vector<int> first;
  std::vector<std::vector<double>> w;
};
Taps bilinear_taps(int in, int out) {
  Taps t;
  const double scale = static_cast<double>(in) / out;
  const double fscale = std::max(scale, 1.0);
  const double support = 1.0 * fscale;
  for (int o = 0; o < out; ++o) {
    const double center = (o + 0.5) * scale;
    const int lo = std::max(0, static_cast<int>(std::floor(center - support + 0.5)));
    const int hi = std::min(in, static_cast<int>(std::floor(center + support + 0.5)));
    std::vector<double> w;
    double sum = 0;
    for (int i = lo; i < hi; ++i) {
      const double x = std::abs((i - center + 0.5) / fscale);
      const double v = x < 1 ? 1 - x : 0;
      w.push_back(v);
      sum += v;
    }
    if (sum > 0)
      for (double& v : w) v /= sum;
    t.first.push_back(lo);
    t.w.push_back(std::move(w));
  }
  return t;
}

}  // namespace

std::vector<float> vit_preprocess(const LoadedEncoder& enc, const RgbImage& img) {
  const EncoderConfig& c = enc.model->config();
  const int S = c.image_size, C = c.channels;
  if (img.height <= 0 || img.width <= 0 || (img.channels != 1 && img.channels != 3 && img.channels != 4))
    throw UsageError("vit_preprocess: an image of 1, 3 or 4 channels");
  if (!enc.do_resize && (img.height != S || img.width != S))
    throw UsageError(fmt::format("the image is {}x{}; this model takes {}x{} and its preprocessor does not resize", img.width,
                                 img.height, S, S));
  const Taps ty = bilinear_taps(img.height, S), tx = bilinear_taps(img.width, S);
  std::vector<float> out(static_cast<size_t>(C) * S * S);
  std::vector<double> rows(static_cast<size_t>(img.height) * S);
  for (int ch = 0; ch < C; ++ch) {
    const int src = img.channels == 1 ? 0 : std::min(ch, img.channels - 1);
    // Horizontal pass then vertical, in 0..255 units as PIL works on 8-bit images.
    for (int y = 0; y < img.height; ++y)
      for (int x = 0; x < S; ++x) {
        double s = 0;
        for (size_t k = 0; k < tx.w[x].size(); ++k)
          s += tx.w[x][k] * img.pixels[(static_cast<size_t>(y) * img.width + tx.first[x] + k) * img.channels + src];
        rows[static_cast<size_t>(y) * S + x] = std::clamp(std::round(s * 255.0), 0.0, 255.0);
      }
    for (int y = 0; y < S; ++y)
      for (int x = 0; x < S; ++x) {
        double s = 0;
        for (size_t k = 0; k < ty.w[y].size(); ++k) s += ty.w[y][k] * rows[(ty.first[y] + k) * S + x];
        // PIL rounds and clamps each pass to 8 bits when the image is 8-bit.
        const double v = std::clamp(std::round(s), 0.0, 255.0);
        double f = v * enc.rescale;
        if (enc.do_normalize) f = (f - enc.mean[ch]) / enc.std[ch];
        out[(static_cast<size_t>(ch) * S + y) * S + x] = static_cast<float>(f);
      }
  }
  return out;
}

AttentionRecord record_vit_image(const LoadedEncoder& enc, const RgbImage& img, int threads, const RecordOptions& what,
                                 int explain) {
  const EncoderConfig& c = enc.model->config();
  if (explain < -1 || explain >= c.labels)
    throw UsageError(fmt::format("--class {} outside the model's {} labels (0..{})", explain, c.labels, c.labels - 1));
  const std::vector<float> px = vit_preprocess(enc, img);
  AttentionRecord r;
  RecordSink sink(r, what);
  EncoderForwardOptions opt;
  opt.threads = threads;
  const Mat logits = enc.model->forward_image(px, &sink, opt);
  if (what.mixing) add_mixing_rollout(r.tensors, "vit");
  if (what.relevance) {   // Chefer et al. (2021): the gradient and the LRP relevance of every map
    if (explain < 0) logits.row(0).maxCoeff(&explain);
    add_explanation(r, enc, enc.model->explain_image(px, explain, threads), "vit");
  }
  const int G = c.grid(), S = c.image_size;
  std::vector<std::string> tokens{"[CLS]"};
  for (int y = 0; y < G; ++y)
    for (int x = 0; x < G; ++x) tokens.push_back(fmt::format("{},{}", y, x));
  r.tokens["tokens"] = tokens;
  // The image the model saw, as gray in [0, 1] (the mean of the un-normalized channels).
  RecordImage im;
  im.height = im.width = S;
  im.pixels.assign(static_cast<size_t>(S) * S, 0.f);
  for (int ch = 0; ch < c.channels; ++ch)
    for (size_t i = 0; i < im.pixels.size(); ++i) {
      float v = px[ch * im.pixels.size() + i];
      if (enc.do_normalize) v = v * enc.std[ch] + enc.mean[ch];
      im.pixels[i] += std::clamp(v / (enc.rescale * 255.f), 0.f, 1.f) / c.channels;
    }
  im.patch_rows = im.patch_cols = G;
  im.prefix_tokens = 1;
  r.image = std::move(im);
  Eigen::Index best = 0;
  const double p = top_probability(logits, best);
  r.metadata["model"] = c.name;
  r.metadata["architecture"] = "vit";
  r.metadata["attention"] = "scaled-dot";
  r.metadata["prediction"] = label_name(enc, best);
  r.metadata["score"] = fmt::format("{:.6f}", p);
  return r;
}

}  // namespace attnviz::models
