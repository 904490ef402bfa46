// `--record norms[,mixing]`: what a record command records besides the attention weights.
#pragma once
#include <attnviz/models/model.hpp>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <string>
#include <vector>

namespace attnviz::cli {

// with_mixing: the model can also give value zeroing (models on the engine's encoder blocks);
// with_relevance: attention gradients and LRP relevance (Chefer et al. 2021).
// relevance_help: what "relevance" means for this command when it differs (decoder LMs: grad-rollout).
inline void add_record_what(CLI::App* sub, std::vector<std::string>& what, bool with_mixing,
                            bool with_relevance = false, const char* relevance_help = nullptr) {
  std::string help = "also record (comma-separated): norms (norm-based attention <name>.norm per head and "
                     "<name>.norm_sum over heads, Kobayashi et al. 2020)";
  if (with_mixing)
    help += ", mixing (value zeroing <stack>.layerN.self.mixing, a translator decoder's layerN.cross.mixing too, and "
            "<stack>.mixing_rollout, Mohebbi et al. 2023)";
  if (with_relevance && relevance_help)
    help += std::string(", relevance (") + relevance_help + ")";
  else if (with_relevance)
    help += ", relevance (the gradient and the LRP relevance of every attention map for saliency method chefer, "
            "Chefer et al. 2021)";
  std::vector<std::string> allowed = {"norms"};
  if (with_mixing) allowed.push_back("mixing");
  if (with_relevance) allowed.push_back("relevance");
  sub->add_option("--record", what, help)->delimiter(',')->check(CLI::IsMember(allowed));
}

inline models::RecordOptions record_what(const std::vector<std::string>& what) {
  models::RecordOptions r;
  r.norms = std::find(what.begin(), what.end(), "norms") != what.end();
  r.mixing = std::find(what.begin(), what.end(), "mixing") != what.end();
  r.relevance = std::find(what.begin(), what.end(), "relevance") != what.end();
  return r;
}

}  // namespace attnviz::cli
