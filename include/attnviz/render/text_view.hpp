// The highlighted-text view: sentences as wrapped text, each token on a background shaded by its
// attention weight, with label and prediction; many sentences per figure; PNG/SVG/PDF and a
// self-contained HTML page where hovering a token shows its weight.
#pragma once
#include <attnviz/record/record.hpp>
#include <attnviz/render/colormap.hpp>
#include <attnviz/render/draw.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace attnviz::render {

// One sentence to draw.
struct TextViewItem {
  std::vector<std::string> tokens;   // [T]
  std::vector<float> weights;        // [T] attention weights (NaN allowed: drawn hatched magenta)
  std::string label;                 // true label ("" = unknown)
  std::string prediction;            // predicted label ("" = none)
  double probability = -1;           // of the prediction (< 0 = unknown)
  std::string note;                  // small grey text after the header (source, model)
  // A row of a causal (decoder) map: position `query` attends over 0..query, and row i explains the
  // prediction of token i + 1. The query token is outlined (solid), the token it predicts outlined
  // dashed with an arrow from the query, the tokens after that (unseen by the row) greyed, and the
  // header names both. -1: no such marks (encoder / bidirectional maps, pooling, saliency).
  int query = -1;
  std::string next_token;            // with query >= 0: the predicted token ("" = not in the record)
};

// Which weights of a record: row `query` of `tensor` (head `head`, or the mean over heads) over
// the tensor's key tokens.
struct TextSelection {
  std::string tensor = "pool";
  int head = -1;    // -1 = mean over heads
  int query = 0;
};

// The item of one record (label, prediction, probability and source from its metadata). A causal
// tensor (causal_tensor in plots.hpp: an LM record, a translator's decoder self-attention or
// decoder.relevance_self) over one token axis sets query = sel.query and next_token = the key token
// after it (for keys "target_input" = <bos> y_1 .. y_n: the "target" token y_{i+1}, <eos> last).
// Throws UsageError for an unknown tensor / head / query, or keys without tokens.
TextViewItem text_item(const AttentionRecord& record, const TextSelection& sel);

// How weights become shades.
//   Sentence: each sentence divided by its own largest weight (peaks always darkest).
//   Global:   every sentence divided by the largest weight shown in the figure.
//   None:     raw weights on [0, 1] (small weights of long sentences stay pale).
enum class TextNorm { Sentence, Global, None };
TextNorm parse_text_norm(const std::string& s);   // "sentence" | "global" | "none"; UsageError

struct TextViewOptions {
  std::string cmap = "magma";
  bool reverse = true;      // true: the weight peak takes the colormap's low end (dark for magma)
  bool fade = true;         // true: low weights fade towards white, so the text stays readable
  TextNorm norm = TextNorm::Sentence;
  double width = 560;       // text column width in points (tokens wrap inside it)
  double font_size = 12;
  std::string title;        // figure title ("" = none)
  bool legend = true;       // a shade scale at the bottom
  std::string quantity;     // what the weights are, for the legend ("" = "attention weight")
};

// Shade at t in [0, 1] (after normalisation): c = cmap(reverse ? 1 - t : t), then, with fade,
// white * (1 - t) + c * t. NaN gives kNonFinite.
Color token_shade(double t, const TextViewOptions& opt);
// t per token of every item under opt.norm: [items][T].
std::vector<std::vector<double>> normalized_weights(const std::vector<TextViewItem>& items, const TextViewOptions& opt);

// Where each token box went (for tests and the HTML page): item, token, rectangle in points.
struct TokenBox {
  int item = 0, token = 0;
  double x = 0, y = 0, w = 0, h = 0;
  Color fill;
};

DrawList layout_text(const std::vector<TextViewItem>& items, const TextViewOptions& opt,
                     std::vector<TokenBox>* boxes = nullptr);
// The colour of the query / next-token marks of a causal row (TextViewItem::query).
inline const Color kQueryMark = Color::rgb8(0x1f, 0x63, 0xd6);
// The header line naming a causal row's query and the token it predicts ("" when query < 0):
// query “sat” (position 5) → next token “on”.
std::string query_caption(const TextViewItem& item);

// A self-contained HTML page (inline CSS, no scripts or external files): tokens as spans with the
// same shades; hovering shows "weight 0.123 (t 0.85)".
std::string text_view_html(const std::vector<TextViewItem>& items, const TextViewOptions& opt);
// Writes PNG / SVG / PDF / HTML by the extension of `out`, atomically.
void render_text(const std::vector<TextViewItem>& items, const TextViewOptions& opt,
                 const std::filesystem::path& out, const PaintOptions& paint = {});

}  // namespace attnviz::render
