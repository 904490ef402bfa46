// Saliency from recorded attention, generic over any record with stacked self-attention layers
// ("vit.layer0.self" .. "vit.layerN.self", "encoder.layerN.self", ...): the last layer's CLS
// attention, attention rollout and attention flow (Abnar & Zuidema 2020), gradient-weighted
// rollout and the full transformer attribution of Chefer et al. (2021, LRP relevance x gradient).
#pragma once
#include <attnviz/record/record.hpp>
#include <attnviz/tensor.hpp>

#include <string>
#include <vector>

namespace attnviz {

enum class SaliencyMethod { Cls, Rollout, Flow, GradRollout, Chefer };
enum class HeadFusion { Mean, Max, Min };

// Every method's name, in enum order: "cls", "rollout", "flow", "grad-rollout", "chefer" (the one
// list option help and error messages are built from), and that list joined by ", ".
const std::vector<std::string>& saliency_method_names();
std::string saliency_method_list();
// One of those names (UsageError otherwise); and back.
SaliencyMethod parse_saliency_method(const std::string& s);
std::string to_string(SaliencyMethod m);
HeadFusion parse_head_fusion(const std::string& s);  // "mean", "max", "min"

struct RolloutOptions {
  HeadFusion fusion = HeadFusion::Mean;
  // Fraction in [0, 1) of each layer's fused weights set to zero, lowest first (Abnar's "discard"
  // variant as popularised by vit-explain). The diagonal is never discarded.
  float discard_ratio = 0.f;
};

// The fused, residual-augmented, row-normalised matrix of one layer (the factor rollout and flow
// use): A = fuse_h(W_h); zero the lowest discard_ratio of A's off-diagonal entries; A = A + I;
// divide each row by its sum. t: [H, N, N] -> [N, N].
Mat residual_attention(const AttentionTensor& t, const RolloutOptions& opt = {});

// Rollout: R = Â_L ... Â_2 Â_1 (Â of the last layer on the left), [N, N]. Row q of R says how
// much each input token contributes to output token q. layers: ordered bottom to top, all [H, N, N].
Mat attention_rollout(const std::vector<const AttentionTensor*>& layers, const RolloutOptions& opt = {});

// Attention flow: for each input token i, the maximum flow from node (0, i) to node (L, output)
// in the layered graph whose edge (l, k) -> (l+1, q) has capacity Â_l[q, k]. [N]. Solved with
// Dinic's algorithm on the layered graph, one max-flow per input token.
std::vector<float> attention_flow(const std::vector<const AttentionTensor*>& layers, int output,
                                  const RolloutOptions& opt = {});

// Gradient-weighted rollout (Chefer et al. 2021): Ā_l = mean_h (grad_h ⊙ W_h)^+ and
// R = I, R <- R + Ā_l R for l = 1..L, i.e. R = (I + Ā_L) ... (I + Ā_1), rows not renormalised.
// grads: same shapes as layers. [N, N].
Mat grad_rollout(const std::vector<const AttentionTensor*>& layers,
                 const std::vector<const AttentionTensor*>& grads);

// Chefer et al.'s transformer attribution (their eq. 13-14): the same rollout with the LRP relevance
// R^(l) of each attention map in place of the weights, Ā_l = mean_h (grad_h ⊙ R^(l)_h)^+.
// relevance: [H, N, N] per layer (MnistModel::relevance, AttentionRecord::relevance). [N, N].
Mat chefer_rollout(const std::vector<const AttentionTensor*>& relevance,
                   const std::vector<const AttentionTensor*>& grads);

// One layer's gradient-weighted head average (Chefer, Gur & Wolf, ICCV 2021, eq. 5):
// Ā = mean_h (grad_h ⊙ M_h)^+, M = the attention weights (or their LRP relevance). [Nq, Nk].
Mat gradient_weighted_heads(const AttentionTensor& m, const AttentionTensor& grad);

// Their eq. 8-9, the normalisation of a self-relevance map before it enters a cross-attention
// update: R^ = R - I, each row of R^ divided by its sum, + I. A row of R^ summing to 0 (nothing
// mixed into that token yet) stays 0, i.e. the row of I. r: [N, N].
Mat normalize_self_relevance(const Mat& r);

// Their encoder-decoder relevance (ICCV 2021, Section 3): R^ss = I [S, S], R^tt = I [T, T],
// R^ts = 0 [T, S]; every encoder self-attention layer (eq. 6): R^ss += Ā R^ss; then every decoder
// layer, its causal self-attention (eq. 6-7): R^tt += Ā R^tt, R^ts += Ā R^ts; and its cross-
// attention (eq. 10): R^ts += (R̄^tt)^T Ā R̄^ss with R̄ = normalize_self_relevance (eq. 11,
// R^tt += Ā R^st, adds nothing: the encoder never sees the target, R^st = 0).
// encoder: Ā per encoder layer [S, S]; decoder_self: [T, T] and decoder_cross: [T, S] per decoder
// layer, bottom to top (gradient_weighted_heads of the maps for one explained output).
struct EncoderDecoderRelevance {
  Mat source;          // R^ss [S, S]
  Mat target;          // R^tt [T, T]
  Mat target_source;   // R^ts [T, S]
};
EncoderDecoderRelevance encoder_decoder_relevance(const std::vector<Mat>& encoder, const std::vector<Mat>& decoder_self,
                                                  const std::vector<Mat>& decoder_cross);

struct SaliencyOptions {
  SaliencyMethod method = SaliencyMethod::Rollout;
  std::string stack;   // which stack of "<stack>.layerN.self" tensors; "" = the first one found
  int query = 0;       // output token whose saliency is explained (0 = CLS)
  int head = -1;       // cls: one head, or -1 for the mean over heads
  int layer = -1;      // cls: which layer (-1 = last)
  RolloutOptions rollout;
};

// The stacked self-attention layers of a record, bottom to top (stack "" = the first stack that
// has "<stack>.layer<N>.self" tensors, falling back to any layered tensors with square shapes).
// Throws InputError(path, ...) when there are none or their shapes disagree.
std::vector<const AttentionTensor*> self_attention_layers(const AttentionRecord& r, const std::string& stack,
                                                          const std::string& path = "");

// Saliency of every key token for output token opt.query, [N]. GradRollout needs the record's
// gradients, Chefer its gradients and relevance (InputError if absent). A record without layered self-attention but with one
// single-query tensor (e.g. "pool" [1, 1, P]) is explained by that tensor for every method.
std::vector<float> token_saliency(const AttentionRecord& r, const SaliencyOptions& opt, const std::string& path = "");

// The same restricted to the image patches and laid out on the record's patch grid:
// [patch_rows, patch_cols]. Needs record.image with a patch grid (InputError otherwise).
Mat patch_saliency(const AttentionRecord& r, const SaliencyOptions& opt, const std::string& path = "");

}  // namespace attnviz
