// Synthetic records for the HTML page tests (test_render_html*.cpp): one per kind of page the views
// handle — self-attention stacks with tokens, a text-classification record, an image record.
#pragma once
#include <attnviz/record/record.hpp>

#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace attnviz::test {

// Softmax rows of random logits with a diagonal band, so the matrices look like attention.
inline void fill_softmax(AttentionTensor& t, unsigned seed, float sharp = 3.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<float> row(t.keys);
  for (int h = 0; h < t.heads; ++h)
    for (int q = 0; q < t.queries; ++q) {
      float mx = -1e30f;
      int focus = (q * t.keys / std::max(1, t.queries) + h * 3) % t.keys;
      for (int k = 0; k < t.keys; ++k) {
        float d = static_cast<float>(std::abs(k - focus));
        row[k] = sharp * n(rng) * 0.5f + (d < 2 ? 4.f : 0.f) - 0.02f * d;
        mx = std::max(mx, row[k]);
      }
      float s = 0;
      for (int k = 0; k < t.keys; ++k) s += row[k] = std::exp(row[k] - mx);
      for (int k = 0; k < t.keys; ++k) t.at(h, q, k) = row[k] / s;
    }
}

inline std::vector<std::string> words(int n, const std::string& stem = "tok") {
  static const char* w[] = {"the", "cat", "sat", "on", "mat", "and", "looked", "at", "a", "bird", "über", "猫"};
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(n <= 12 ? std::string(w[i % 12]) : stem + std::to_string(i));
  return out;
}

// layers x heads self-attention over n tokens ("encoder.layerL.self").
inline AttentionRecord self_record(int layers, int heads, int n) {
  AttentionRecord r;
  r.tokens["tokens"] = words(n);
  for (int l = 0; l < layers; ++l) {
    AttentionTensor t("encoder.layer" + std::to_string(l) + ".self", heads, n, n, "tokens", "tokens");
    fill_softmax(t, 100 + l);
    r.tensors.push_back(std::move(t));
  }
  r.metadata["model"] = "synthetic";
  return r;
}

// A text-classification record: [CLS] + words, two self layers and a pooling tensor [1, 1, T].
inline AttentionRecord text_record() {
  AttentionRecord r = self_record(2, 2, 9);
  auto& tok = r.tokens["tokens"];
  tok = {"[CLS]", "a", "truly", "wonderful", "film", ",", "moving", "and", "funny"};
  AttentionTensor pool("pool", 1, 1, 9, "", "tokens");
  const float w[9] = {0.02f, 0.03f, 0.10f, 0.40f, 0.05f, 0.02f, 0.20f, 0.03f, 0.15f};
  for (int k = 0; k < 9; ++k) pool.at(0, 0, k) = w[k];
  r.tensors.push_back(pool);
  r.metadata["label"] = "positive";
  r.metadata["prediction"] = "positive";
  return r;
}

// A vision record: a 28x28 image (a ring), 7x7 patches + CLS, two ViT layers of 3 heads.
inline AttentionRecord image_record() {
  AttentionRecord r;
  RecordImage im;
  im.height = im.width = 28;
  im.patch_rows = im.patch_cols = 7;
  im.prefix_tokens = 1;
  for (int y = 0; y < 28; ++y)
    for (int x = 0; x < 28; ++x) {
      float d = std::hypot(y - 13.5f, x - 13.5f);
      im.pixels.push_back(std::abs(d - 8.f) < 2.5f ? 1.f : 0.f);
    }
  r.image = im;
  std::vector<std::string> tok{"[CLS]"};
  for (int p = 0; p < 49; ++p) tok.push_back("p" + std::to_string(p / 7) + "," + std::to_string(p % 7));
  r.tokens["patches"] = tok;
  for (int l = 0; l < 2; ++l) {
    AttentionTensor t("vit.layer" + std::to_string(l) + ".self", 3, 50, 50, "patches", "patches");
    fill_softmax(t, 7 + l, 1.5f);
    r.tensors.push_back(std::move(t));
  }
  r.metadata["label"] = "0";
  r.metadata["prediction"] = "0";
  return r;
}

}  // namespace attnviz::test
