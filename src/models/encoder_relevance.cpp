// Chefer et al. (2021) transformer attribution for the pretrained ViT: its weights on the engine's
// pre-LN encoder blocks, one backward pass for the attention gradients and one LRP pass
// (engine/relevance.hpp) for the relevance of every attention map.
#include <attnviz/engine/blocks.hpp>
#include <attnviz/engine/relevance.hpp>
#include <attnviz/error.hpp>
#include <attnviz/models/encoder.hpp>

#include <fmt/core.h>

namespace attnviz::models {

EncoderModel::Explanation EncoderModel::explain_image(const std::vector<float>& pixels, int target, int threads) const {
  if (cfg_.family != EncoderFamily::Vit) throw UsageError("explain_image needs a ViT");
  if (cfg_.act == EncoderAct::GeluTanh)
    throw UsageError(fmt::format("{}: relevance runs the engine's blocks, which have GELU (erf) and ReLU; this model's "
                                 "hidden_act is a tanh GELU",
                                 cfg_.name));
  const int D = cfg_.dim, L = cfg_.layers, T = 1 + cfg_.grid() * cfg_.grid();
  if (target < -1 || target >= cfg_.labels)
    throw UsageError(fmt::format("class {} outside the model's {} labels (0..{})", target, cfg_.labels, cfg_.labels - 1));
  // Our weights are PyTorch's [out, in]; the engine's Linear holds [in, out].
  auto linear = [&](const std::string& n) {
    const Mat& w = weight(n + ".weight");
    nn::Linear lin(static_cast<int>(w.cols()), static_cast<int>(w.rows()));
    lin.weight.value = w.transpose();
    lin.bias.value = weight(n + ".bias");
    return lin;
  };
  auto norm = [&](const std::string& n) {
    nn::LayerNorm ln(D, cfg_.norm_eps);
    ln.gamma.value = weight(n + ".weight");
    ln.beta.value = weight(n + ".bias");
    return ln;
  };
  nn::EncoderBlockOptions bo;
  bo.dim = D;
  bo.heads = cfg_.heads;
  bo.mlp_hidden = cfg_.ffn;
  bo.activation = cfg_.act == EncoderAct::Relu ? nn::Activation::Relu : nn::Activation::Gelu;
  std::vector<nn::EncoderBlock> blocks;
  blocks.reserve(L);
  for (int l = 0; l < L; ++l) {
    const std::string p = "layer" + std::to_string(l) + ".";
    nn::EncoderBlock& b = blocks.emplace_back(bo);
    b.ln1 = norm(p + "attn_norm");
    b.ln2 = norm(p + "ffn_norm");
    b.attn.wq = linear(p + "attn.q");
    b.attn.wk = linear(p + "attn.k");
    b.attn.wv = linear(p + "attn.v");
    b.attn.wo = linear(p + "attn.out");
    b.fc1 = linear(p + "ffn.up");
    b.fc2 = linear(p + "ffn.down");
  }
  nn::LayerNorm final_norm = norm("final_norm");
  nn::Linear head = linear("classifier");

  Explanation e;
  e.weights.resize(L);
  std::vector<Mat> xs(L);   // each block's input [T, D]
  Mat x = embed_image(pixels, threads);
  for (int l = 0; l < L; ++l) {
    xs[l] = x;
    x = blocks[l].forward(x, 1, T, {}, &e.weights[l]);
  }
  e.logits = head.forward(final_norm.forward(x.topRows(1)));   // [1, labels]
  if (target < 0) e.logits.row(0).maxCoeff(&target);
  e.target = target;

  // Gradients of the logit: head, final LN, the CLS row, every block from the top.
  Mat seed = Mat::Zero(1, cfg_.labels);
  seed(0, target) = 1;
  Mat dx = Mat::Zero(T, D);
  dx.row(0) = final_norm.backward(head.backward(seed));
  e.gradients.resize(L);
  for (int l = L - 1; l >= 0; --l) dx = blocks[l].backward(dx, &e.gradients[l]);

  // Relevance: the head by alpha = 1, beta = 0; the final LayerNorm passes it through to the CLS row.
  Mat r = Mat::Zero(T, D);
  r.row(0) = nn::lrp_linear(head.x_, head.weight.value, seed);
  e.relevance.resize(L);
  for (int l = L - 1; l >= 0; --l) r = nn::lrp_encoder_block(blocks[l], xs[l], e.weights[l], r, &e.relevance[l]);
  e.input_relevance = std::move(r);
  return e;
}

}  // namespace attnviz::models
