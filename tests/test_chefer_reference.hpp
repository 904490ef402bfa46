// One case of a scripts/make_chefer_reference.py JSON (a tiny ViT: 2 layers x 2 heads x 17 tokens)
// against a record: the Chefer map, each layer's CLS-row relevance and, for the case that stores
// them, every row of the relevance and of the gradients; each to 1e-4 of the largest reference value.
#pragma once
#include <attnviz/analysis/saliency.hpp>
#include <attnviz/record/record.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace attnviz::test {

inline void check_chefer_reference_case(const AttentionRecord& r, const nlohmann::json& c) {
  REQUIRE(r.relevance.size() == 2);
  // The whole map (CLS row of prod (I + A_bar)) over all 17 tokens.
  SaliencyOptions so;
  so.method = SaliencyMethod::Chefer;
  const std::vector<float> s = token_saliency(r, so, "r");
  REQUIRE(s.size() == 17);
  double scale = 0;
  for (double v : c["chefer"]) scale = std::max(scale, std::abs(v));
  for (int k = 0; k < 17; ++k) CHECK(s[k] == doctest::Approx(c["chefer"][k].get<double>()).epsilon(1e-4).scale(scale));
  // Each layer's relevance of its attention, CLS rows of every head.
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 2; ++h) {
      double sc = 0;
      for (double v : c["relevance_cls"][l][h]) sc = std::max(sc, std::abs(v));
      for (int k = 0; k < 17; ++k)
        CHECK(r.relevance[l].at(h, 0, k) == doctest::Approx(c["relevance_cls"][l][h][k].get<double>()).epsilon(1e-4).scale(sc));
    }
  // The first case stores every row (the HF ViT reference also every row of the gradients).
  for (const char* key : {"relevance", "gradients"}) {
    if (!c.contains(key)) continue;
    const auto& mine = std::string(key) == "relevance" ? r.relevance : r.gradients;
    REQUIRE(mine.size() == 2);
    for (int l = 0; l < 2; ++l) {
      double err = 0, sc = 0;
      for (int h = 0; h < 2; ++h)
        for (int q = 0; q < 17; ++q)
          for (int k = 0; k < 17; ++k) {
            const double want = c[key][l][h][q][k];
            err = std::max(err, std::abs(mine[l].at(h, q, k) - want));
            sc = std::max(sc, std::abs(want));
          }
      INFO(key << " layer " << l << ": max |diff| " << err << " of " << sc);
      CHECK(sc > 0);
      CHECK(err <= 1e-4 * sc);
    }
  }
}

}  // namespace attnviz::test
