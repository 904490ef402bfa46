// Pretrained transformer encoders (BERT, RoBERTa, DistilBERT; ViT image classifiers) on the model
// contract: config, the table of our tensor names, the forward pass on the engine's kernels with an
// optional attention sink, and loaders from Hugging Face directories (each family = a table from
// the checkpoint's names to ours).
#pragma once
#include <attnviz/data/image.hpp>
#include <attnviz/engine/attention.hpp>
#include <attnviz/models/model.hpp>
#include <attnviz/tensor.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace attnviz {
class WordPieceTokenizer;   // text/hf_tokenizer.hpp
class LmTokenizer;          // text/lm_tokenizer.hpp
}

namespace attnviz::models {

enum class EncoderFamily { Bert, Roberta, DistilBert, Vit };
const char* encoder_family_name(EncoderFamily f);   // "bert", "roberta", "distilbert", "vit"
enum class EncoderAct { GeluErf, GeluTanh, Relu };

struct EncoderConfig {
  EncoderFamily family = EncoderFamily::Bert;
  std::string name;
  int layers = 0, dim = 0, heads = 0, ffn = 0;   // L, D, H, F
  int vocab = 0;             // V (text families)
  int positions = 0;         // learned position rows
  int type_vocab = 0;        // token types (0: none, DistilBERT)
  int position_offset = 0;   // first position id (RoBERTa: pad_token_id + 1)
  float norm_eps = 1e-12f;
  bool pre_norm = false;     // ViT: LayerNorm before attention / MLP; BERT: after the residual add
  EncoderAct act = EncoderAct::GeluErf;
  // ViT (labels > 0 always); text families with a sequence-classification head (labels > 0):
  // logits = classifier(act(pooler(h_0))) on the first token's last hidden state, act = tanh (BERT's
  // pooler, RoBERTa's classifier.dense) or ReLU (head_relu: DistilBERT's pre_classifier).
  int image_size = 0, patch_size = 0, channels = 3, labels = 0;
  bool head_relu = false;
  int grid() const { return patch_size > 0 ? image_size / patch_size : 0; }   // patches per side
  void validate(const std::string& path = "") const;   // throws InputError(path, ...)
  std::string to_json() const;
};

struct EncoderTensorSpec {
  std::string name;          // ours: "embeddings.word", "layer3.attn.q.weight", ...
  std::vector<std::int64_t> shape;
};
std::vector<EncoderTensorSpec> encoder_tensor_table(const EncoderConfig& cfg);

struct EncoderForwardOptions {
  std::vector<Mat>* layer_outputs = nullptr;   // optional: hidden states after each layer [T, D]
  int threads = 0;                             // 0 = nn::threads()
};

class EncoderModel : public Model {
 public:
  explicit EncoderModel(const EncoderConfig& cfg);   // zero weights of the table's shapes
  std::string kind() const override { return encoder_family_name(cfg_.family); }
  std::string config_json() const override { return cfg_.to_json(); }
  const EncoderConfig& config() const { return cfg_; }
  Mat& weight(const std::string& name);               // throws std::out_of_range
  const Mat& weight(const std::string& name) const;
  void init_random(std::uint64_t seed, float stddev = 0.02f);

  // Text: ids [T] (type_ids [T] or empty = all 0) -> last hidden states [T, D]. With a sink every
  // layer's weights go to it as "encoder.layer<L>.self" [1, H, T, T], preceded by its norm-based
  // attention "<name>.norm" [1, H, T, T] and "<name>.norm_sum" [1, 1, T, T] when it wants_norms()
  // (nn::norm_attention), and "<name>.mixing" [1, 1, T, T] (value zeroing, nn::value_zeroing: T^2
  // rows through the block's rest) when it wants_mixing(). Throws InputError on an id
  // outside the vocabulary, UsageError past the positions.
  Mat forward_tokens(const std::vector<int>& ids, const std::vector<int>& type_ids, AttentionSink* sink = nullptr,
                     const EncoderForwardOptions& opt = {}) const;
  // Text: the embeddings [T, D] the first layer reads (word + position (+ type), LayerNorm); the
  // same checks as forward_tokens.
  Mat embed_tokens(const std::vector<int>& ids, const std::vector<int>& type_ids) const;
  // ViT: pixels [C, S, S] row-major (S = image_size, normalized) -> logits [1, labels] (hidden
  // [1 + P, D] before the final norm in *hidden when given). Sink names "vit.layer<L>.self".
  Mat forward_image(const std::vector<float>& pixels, AttentionSink* sink = nullptr, const EncoderForwardOptions& opt = {},
                    Mat* hidden = nullptr) const;
  // ViT: the token embeddings [1 + P, D] (CLS, then the patches' stride-p convolution, plus positions)
  // that the first layer reads.
  Mat embed_image(const std::vector<float>& pixels, int threads = 0) const;
  // Chefer et al. (2021): the logit of class `target` (-1 = the predicted one) explained. Runs the
  // model on the engine's blocks (nn::EncoderBlock with this model's weights, pre- or post-norm,
  // LayerNorm eps norm_eps; GELU (erf) or ReLU only: UsageError for gelu_tanh), then one backward
  // pass from that logit for d(logit)/d(attention) of every layer and one LRP pass for each map's
  // relevance: nn::lrp_linear for the classifier (text: then for the pooler, its tanh / ReLU passing
  // relevance through; ViT: the final LayerNorm passing it through) to the first token's row, then
  // nn::lrp_encoder_block per layer from the top. Text models need a head (labels > 0): UsageError.
  struct Explanation {
    Mat logits;                                   // [1, labels]
    int target = -1;                              // the class explained
    std::vector<nn::AttentionWeights> weights;    // per layer [1, H, T, T] (T = 1 + P)
    std::vector<nn::AttentionWeights> gradients;  // d(logit)/d(weights), per layer
    std::vector<nn::AttentionWeights> relevance;  // R^(b) of each layer's weights
    Mat input_relevance;                          // [T, D] at the first layer's input
    double absorbed = 0;                          // what Linear outputs with no positive contribution
                                                  // passed on to nothing: sum(input_relevance) + absorbed = 1
  };
  Explanation explain_image(const std::vector<float>& pixels, int target = -1, int threads = 0) const;
  // Text (T = the ids; input_relevance at the embedding LayerNorm's output, which passes it on).
  Explanation explain_tokens(const std::vector<int>& ids, const std::vector<int>& type_ids, int target = -1) const;

 private:
  EncoderConfig cfg_;
  std::vector<std::unique_ptr<nn::Param>> owned_;
  void layers_forward(Mat& x, const std::string& stack, AttentionSink* sink, const EncoderForwardOptions& opt) const;
  Explanation explain(const Mat& x0, int target) const;   // x0: the first layer's input [T, D]
  // Layer l after its attention, in place on the residual sums x [n, D] (row-wise; h, up, proj scratch).
  void block_rest(int l, Mat& x, Mat& h, Mat& up, Mat& proj, int threads) const;
};

// A Hugging Face encoder directory (config.json model_type bert, roberta, distilbert, vit) and its
// tokenizer (text families: WordPiece for bert/distilbert, byte-level BPE for roberta; null for vit).
struct LoadedEncoder {
  std::unique_ptr<EncoderModel> model;
  std::shared_ptr<const WordPieceTokenizer> wordpiece;
  std::shared_ptr<const LmTokenizer> bpe;   // roberta
  int bos = -1, eos = -1;                   // roberta's <s>, </s>
  std::vector<std::string> label_names;     // vit, text with a classification head: id2label
  // vit preprocessor_config.json: resize to image_size, then (x * rescale - mean) / std per channel
  float rescale = 1.f / 255.f;
  std::vector<float> mean{0.5f, 0.5f, 0.5f}, std{0.5f, 0.5f, 0.5f};
  bool do_resize = true, do_normalize = true;
};
// Every tensor name and shape is checked against config.json before any weight is read (masked-LM
// heads of text models are ignored; a sequence-classification head is read when the checkpoint has
// one: BERT's pooler + classifier, RoBERTa's classifier.dense + out_proj, DistilBERT's
// pre_classifier + classifier). Throws InputError naming the file.
LoadedEncoder load_encoder_hf(const std::filesystem::path& dir);

}  // namespace attnviz::models

namespace attnviz::models {

// Tokenizes text (and the pair: BERT's [CLS] a [SEP] b [SEP] with token types 0/1; RoBERTa's
// <s> a </s></s> b </s>), runs the encoder and records every layer x head as
// "encoder.layer<L>.self" [H, T, T] over the axis "tokens" (WordPiece "##" pieces as they are, BPE
// spaces shown as '·'); metadata: model, family, token_ids, type_ids, subwords ("wordpiece" | "bpe").
// what.norms: also each layer's "<name>.norm" / ".norm_sum" right after it; what.mixing: each layer's
// "<name>.mixing" (value zeroing) and "encoder.mixing_rollout" last. Throws UsageError when the tokens exceed the positions or the
// record max_record_mib.
// what.relevance (a model with a classification head; UsageError otherwise): also the gradient and
// the LRP relevance of every map for the logit of `explain` (-1 = the predicted label) and the
// metadata prediction, score, explained.
AttentionRecord record_encoder_text(const LoadedEncoder& enc, const std::string& text, const std::string* pair,
                                    int threads = 0, double max_record_mib = 2048, const RecordOptions& what = {},
                                    int explain = -1);

// Pixels in [0, 1], channels-last [height, width, channels] (1 or 3 channels; gray is repeated).
using RgbImage = DecodedImage;
// Resizes (bilinear with PIL's antialiasing when shrinking) to the model's image_size, rescales and
// normalizes as the preprocessor says -> [C, S, S].
std::vector<float> vit_preprocess(const LoadedEncoder& enc, const RgbImage& img);
// Runs the ViT and records "vit.layer<L>.self" [H, 1+P, 1+P] over the axis "tokens" (CLS, then
// patches "r,c"), the image (gray, [0, 1], the resized model input) with its patch grid and one
// prefix token, the predicted label and its probability. what.relevance: also the gradient and
// the LRP relevance of every map (AttentionRecord::gradients / ::relevance, EncoderModel::explain_image)
// for the logit of `explain` (-1 = the predicted class; UsageError outside 0..labels-1).
AttentionRecord record_vit_image(const LoadedEncoder& enc, const RgbImage& img, int threads = 0, const RecordOptions& what = {},
                                 int explain = -1);

}  // namespace attnviz::models
