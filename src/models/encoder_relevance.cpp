// Chefer et al. (2021) transformer attribution for the pretrained encoders (ViT; BERT family with a
// classification head): their weights on the engine's encoder blocks (pre- or post-norm), one
// backward pass for the attention gradients and one LRP pass (engine/relevance.hpp) for the
// relevance of every attention map.
#include <attnviz/engine/blocks.hpp>
#include <attnviz/engine/relevance.hpp>
#include <attnviz/error.hpp>
#include <attnviz/models/encoder.hpp>

#include <fmt/core.h>

namespace attnviz::models {

EncoderModel::Explanation EncoderModel::explain_image(const std::vector<float>& pixels, int target, int threads) const {
  if (cfg_.family != EncoderFamily::Vit) throw UsageError("explain_image needs a ViT");
  return explain(embed_image(pixels, threads), target);
}

EncoderModel::Explanation EncoderModel::explain_tokens(const std::vector<int>& ids, const std::vector<int>& type_ids,
                                                       int target) const {
  if (cfg_.family == EncoderFamily::Vit) throw UsageError("a ViT takes an image, not tokens");
  if (cfg_.labels <= 0)
    throw UsageError(fmt::format("{} has no sequence-classification head: no label to explain", cfg_.name));
  return explain(embed_tokens(ids, type_ids), target);
}

EncoderModel::Explanation EncoderModel::explain(const Mat& x0, int target) const {
  if (cfg_.act == EncoderAct::GeluTanh)
    throw UsageError(fmt::format("{}: relevance runs the engine's blocks, which have GELU (erf) and ReLU; this model's "
                                 "hidden_act is a tanh GELU",
                                 cfg_.name));
  const bool vit = cfg_.family == EncoderFamily::Vit;
  const int D = cfg_.dim, L = cfg_.layers, T = static_cast<int>(x0.rows());
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
  bo.post_norm = !cfg_.pre_norm;   // BERT family: LN1 after the attention's residual add, LN2 after the MLP's
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
  // The head on the first token's row: ViT: classifier(LN(h_0)); text: classifier(act(pooler(h_0))).
  nn::LayerNorm final_norm;
  nn::Linear pooler;
  nn::Tanh tanh;
  nn::Relu relu;
  if (vit) final_norm = norm("final_norm");
  else pooler = linear("pooler");
  nn::Linear head = linear("classifier");

  Explanation e;
  e.weights.resize(L);
  std::vector<Mat> xs(L);   // each block's input [T, D]
  Mat x = x0;
  for (int l = 0; l < L; ++l) {
    xs[l] = x;
    x = blocks[l].forward(x, 1, T, {}, &e.weights[l]);
  }
  Mat z = x.topRows(1);
  if (vit) z = final_norm.forward(z);
  else z = cfg_.head_relu ? relu.forward(pooler.forward(z)) : tanh.forward(pooler.forward(z));
  e.logits = head.forward(z);   // [1, labels]
  if (target < 0) e.logits.row(0).maxCoeff(&target);
  e.target = target;

  // Gradients of the logit: the head to the first row, then every block from the top.
  Mat seed = Mat::Zero(1, cfg_.labels);
  seed(0, target) = 1;
  Mat dz = head.backward(seed);
  if (vit) dz = final_norm.backward(dz);
  else dz = pooler.backward(cfg_.head_relu ? relu.backward(dz) : tanh.backward(dz));
  Mat dx = Mat::Zero(T, D);
  dx.row(0) = dz;
  e.gradients.resize(L);
  for (int l = L - 1; l >= 0; --l) dx = blocks[l].backward(dx, &e.gradients[l]);

  // Relevance: the classifier (and the pooler) by alpha = 1, beta = 0; LayerNorm, tanh and ReLU pass
  // it through to the first row.
  Mat rz = nn::lrp_linear(head.x_, head.weight.value, seed, &e.absorbed);
  if (!vit) rz = nn::lrp_linear(pooler.x_, pooler.weight.value, rz, &e.absorbed);
  Mat r = Mat::Zero(T, D);
  r.row(0) = rz;
  e.relevance.resize(L);
  for (int l = L - 1; l >= 0; --l)
    r = nn::lrp_encoder_block(blocks[l], xs[l], e.weights[l], r, &e.relevance[l], &e.absorbed);
  e.input_relevance = std::move(r);
  return e;
}

}  // namespace attnviz::models
