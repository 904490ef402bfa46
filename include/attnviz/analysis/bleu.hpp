// Corpus BLEU-4 (Papineni et al. 2002) on token sequences.
#pragma once
#include <string>
#include <vector>

namespace attnviz {

struct BleuScore {
  double bleu = 0;              // in [0, 1]
  double precisions[4] = {};    // modified n-gram precisions p1..p4
  double brevity_penalty = 0;   // exp(1 - r/c) when c <= r, else 1
  long hypothesis_length = 0, reference_length = 0;
};

// One reference per hypothesis. Clipped n-gram counts are summed over the corpus, then
// BLEU = BP * exp(mean log p_n) for n = 1..4 (no smoothing: 0 when some p_n is 0), with
// BP = 1 if c > r else exp(1 - r / c) (c = total hypothesis length, r = total reference length).
// Tokens are compared as given: the caller's tokenization is the one the score is "on".
BleuScore corpus_bleu(const std::vector<std::vector<std::string>>& hypotheses,
                      const std::vector<std::vector<std::string>>& references);

}  // namespace attnviz
