// Why did a decoder LM generate this token: a backward pass of the LM over a whole token sequence
// (no KV cache: the sequence is recomputed once, keeping what the backward needs) for the logit of
// one token at one position, giving the gradient of every attention map, and from it the
// grad-rollout relevance of every earlier token (Chefer, Gur & Wolf 2021, ICCV, "Generic
// Attention-model Explainability": Ā = mean_h (∇A ⊙ A)^+, R ← R + Ā R, causal); and, in the same
// pass, the full transformer attribution of Chefer, Gur & Wolf (2021, CVPR, "Transformer
// Interpretability Beyond Attention Visualization"): the LRP relevance R^(A) of every attention map
// (the rules of engine/relevance.hpp; RMSNorm/LayerNorm, softmax, SiLU/GELU pass relevance through,
// RoPE by lrp_rotation (w^2 rule), the SwiGLU product halved, grouped-query K/V relevance summed over the query
// heads sharing them) rolled out as Ā = mean_h (∇A ⊙ R^(A))^+.
#pragma once
#include <attnviz/models/lm.hpp>

#include <vector>

namespace attnviz::models {

// The explained output: the logit of `token` at `position` (the model's prediction of the token
// after `position`; for a generated sequence token = ids[position + 1]).
struct LmExplainTarget {
  int position = 0;
  int token = 0;
};

// Tests only: adds `delta` to one attention weight A[layer][head](query, key) after the softmax
// (a finite-difference probe of d(logit)/dA).
struct LmAttentionPerturbation {
  int layer = 0, head = 0, query = 0, key = 0;
  double delta = 0;
};

struct LmRelevanceOptions {
  bool float64 = false;             // compute in double (tests); default float32
  bool keep_gradients = false;      // return every map's gradient and LRP relevance (tests; 2*L*H*n*n values per target)
  bool lrp = true;                  // also the LRP relevance and its rollout (lrp_relevance)
  int threads = 0;                  // 0 = nn::threads(); targets are split over threads
  const LmAttentionPerturbation* perturb = nullptr;
};

struct LmExplanation {
  LmExplainTarget target;
  double logit = 0;                 // the explained logit (the forward's value)
  // Grad-rollout row of `position` over positions 0..position: R = (I + Ā_L) ... (I + Ā_1),
  // Ā_l = mean over query heads of (dlogit/dA ⊙ A)^+ restricted to the causal triangle; rows not
  // renormalised, so the entry of the position itself is >= 1.
  std::vector<double> relevance;
  // lrp: the same rollout with each map's LRP relevance R^(A) in place of A (Chefer et al. CVPR 2021,
  // eq. 13-14): Ā_l = mean over query heads of (dlogit/dA ⊙ R^(A))^+, seeded with relevance 1 on the
  // explained logit.
  std::vector<double> lrp_relevance;
  // lrp: the relevance reaching the embeddings x_0 (token embedding; gpt2: token + position), summed
  // per position [n]; and what the rules absorbed on the way (Linear outputs whose contributions are
  // all negative pass nothing). sum(lrp_input) + lrp_absorbed = 1.
  std::vector<double> lrp_input;
  double lrp_absorbed = 0;
  // keep_gradients: per layer [H, n, n] row-major (n = position + 1), dlogit/dA on the causal
  // triangle (key <= query), 0 above it. lrp_maps: the same layout, R^(A) of each map.
  std::vector<std::vector<double>> gradients, lrp_maps;
};

// One forward over `ids`, then one backward per target (the rows 0..position only: causal).
// Throws UsageError on an empty sequence, past the context, or a target outside the sequence or
// the vocabulary; InputError on a token id outside the vocabulary.
std::vector<LmExplanation> lm_explain(const LmModel& model, const std::vector<int>& ids,
                                      const std::vector<LmExplainTarget>& targets,
                                      const LmRelevanceOptions& opt = {});

// Forward only: the target's logit (with opt.perturb applied; finite differences in tests).
double lm_target_logit(const LmModel& model, const std::vector<int>& ids, const LmExplainTarget& target,
                       const LmRelevanceOptions& opt = {});

}  // namespace attnviz::models

namespace attnviz {
struct AttentionRecord;
}

namespace attnviz::models {

// Adds "decoder.relevance" [1, T, T] (axes "tokens") to a generation record over ids (prompt +
// generated): row t (t >= prompt_tokens - 1) is the grad-rollout relevance of positions 0..t for
// the logit of the generated token ids[t + 1] at position t; the other rows (prompt predictions,
// the last token, steps not asked for) are 0. explain_step k >= 1 explains only the k-th generated
// token (row prompt_tokens + k - 2), 0 every generated token. Beside it "decoder.lrp_relevance"
// [1, T, T], the same rows by the LRP rollout (LmExplanation::lrp_relevance). Metadata:
// "relevance_method", "lrp_relevance_method", "relevance_rows" (JSON list of the explained rows),
// "relevance_logits" (their logits), "lrp_input_relevance" and "lrp_absorbed" (per explained row, the
// LRP relevance reaching the embeddings and absorbed on the way; they sum to 1).
void record_lm_relevance(const LmModel& model, const std::vector<int>& ids, int prompt_tokens, int explain_step,
                         int threads, AttentionRecord& record);

}  // namespace attnviz::models
