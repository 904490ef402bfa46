// The plot kinds: heatmap, layer x head grid, token lines, image overlay, and multi-panel
// figures. Each has an options struct, a pure layout function that returns a DrawList, and a
// render_* function that lays out and writes a file (format from the extension, atomic).
#pragma once
#include <attnviz/io/pharaoh.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/render/colormap.hpp>
#include <attnviz/render/draw.hpp>

#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace attnviz::render {

// ---- picking a matrix out of a record ----

// Which tensor/head of a record a plot shows.
struct Selection {
  std::string tensor;       // tensor name; "" = the first tensor of the record
  int head = 0;             // head index (ignored when mean_heads)
  bool mean_heads = false;  // average over all heads
};

// A matrix with its labels, ready to draw. Rows are queries, columns keys.
struct LabelledMatrix {
  Mat values;                            // [Q, K]
  std::vector<std::string> row_labels;   // Q query tokens (empty: indices are shown)
  std::vector<std::string> col_labels;   // K key tokens
  std::string title;                     // e.g. "decoder.layer0.cross · head 1"
  std::string row_axis, col_axis;        // axis titles, e.g. "query: target", "key: source" ("" = none)
  bool causal = false;                   // square and causal: cells above the diagonal are masked
  std::string quantity;                  // what the values are (value_quantity); "" = attention weights
};

// What a tensor of that name holds, for colourbar labels: "norm ‖α f(x)‖" for "<name>.norm",
// "norm ‖Σ α f(x) W_O‖" for ".norm_sum" (Kobayashi et al. 2020), "context mixing (value zeroing)" for
// ".mixing" and "mixing rollout (value zeroing)" for "<stack>.mixing_rollout"; "" (attention
// weights) otherwise.
std::string value_quantity(const std::string& tensor_name);

// The selected matrix of a record, with tokens of its axes and a title naming tensor, layer and
// head. Throws UsageError for an unknown tensor name (listing the names) or head out of range.
LabelledMatrix select_matrix(const AttentionRecord& record, const Selection& sel);
// Whether a square tensor over one token axis is causal (a decoder's: row i sees keys 0..i): the
// record's "causal" metadata when it has one (LM records), else every weight above the diagonal
// is 0 in every head. Never true for a non-square tensor or one of a single token.
bool causal_tensor(const AttentionRecord& record, const AttentionTensor& t);
// The tensor named sel.tensor, or the first one; UsageError if absent.
const AttentionTensor& select_tensor(const AttentionRecord& record, const std::string& name);

// ---- heatmap ----

// Alignment links drawn over heatmap cells. A link (source i, target j) marks row j, column i
// (queries = target tokens, keys = source tokens, as in decoder cross-attention).
struct AlignmentMarkers {
  std::optional<Alignment> gold;       // sure: filled square outline; possible: dashed outline
  std::optional<Alignment> predicted;  // predicted: small filled dot in the cell centre
};

struct HeatmapOptions {
  std::string cmap = "viridis";
  ScaleOptions scale;
  int values_max_size = 20;   // print cell values when rows and columns are both <= this; 0 = never
  bool colorbar = true;
  std::string colorbar_label; // "" = "attention weight" (or "row-normalized weight")
  bool labels = true;         // token labels on both axes
  std::string title;          // "" = LabelledMatrix::title; "-" = no title
  double cell = 0;            // points per cell; 0 = automatic (larger for small matrices)
  double max_label_width = 150;  // longer tokens are shortened with an ellipsis (points): room for
                                 // a long German compound ("Fehlersuchinformationen") at 12 pt
  AlignmentMarkers markers;
};

DrawList layout_heatmap(const LabelledMatrix& m, const HeatmapOptions& opt);
// select_matrix + layout_heatmap + paint_to_file.
void render_heatmap(const AttentionRecord& record, const Selection& sel, const HeatmapOptions& opt,
                    const std::filesystem::path& out, const PaintOptions& paint = {});

// ---- diff: A - B on the diverging map ----

// One cell's change between two matrices of the same shape.
struct CellChange {
  int query = 0, key = 0;
  double a = 0, b = 0;   // the two values; the change is a - b
};
// The n cells with the largest |a - b| (NaN cells skipped), largest first.
std::vector<CellChange> largest_changes(const Mat& a, const Mat& b, int n);
// A - B with A's labels and a title "A − B"; throws UsageError when the shapes differ (naming both).
LabelledMatrix difference(const LabelledMatrix& a, const LabelledMatrix& b);
// Heatmap of difference(a, b) on a diverging colormap (opt.cmap, default coolwarm when it is not
// diverging) with a symmetric scale [-m, m], m = max |A - B| unless opt.scale.vmax sets it; white is 0.
DrawList layout_diff(const LabelledMatrix& a, const LabelledMatrix& b, HeatmapOptions opt);
void render_diff(const LabelledMatrix& a, const LabelledMatrix& b, const HeatmapOptions& opt,
                 const std::filesystem::path& out, const PaintOptions& paint = {});

// ---- grid: layers x heads thumbnails ("model view") ----

struct GridOptions {
  std::string tensors;        // substring filter on tensor names ("encoder", "cross"); "" = all
  std::vector<int> layers;    // layer indices to show (parsed from names); empty = all
  std::vector<int> heads;     // head indices; empty = all
  std::string cmap = "viridis";
  ScaleOptions scale;         // one shared range over every thumbnail shown
  double thumb = 0;           // thumbnail side in points; 0 = automatic
  std::string title;          // "" = automatic; "-" = none
  // A line under a thumbnail: tensor name -> one caption per head ("" = none), e.g. each head's
  // AER against a gold alignment (`render grid --annotate-aer`).
  std::map<std::string, std::vector<std::string>> captions;
};

DrawList layout_grid(const AttentionRecord& record, const GridOptions& opt);
void render_grid(const AttentionRecord& record, const GridOptions& opt, const std::filesystem::path& out,
                 const PaintOptions& paint = {});

// ---- lines: bipartite token view ----

struct LinesOptions {
  std::vector<int> heads;     // heads to draw, one colour each; empty = all heads (or the mean)
  bool mean_heads = false;    // one set of lines for the mean over heads
  double threshold = 0.05;    // weights below this (after scaling by the max shown) are not drawn
  double max_width = 4;       // line width of the largest weight (points); width and opacity ∝ weight
  int max_lines = 2000;       // draw at most this many (the strongest); the figure says how many were left out
  int query = -1;             // only this query token's lines (a 512-token causal record is a haze); -1 = all
  std::string title;          // "" = automatic; "-" = none
};

// Query tokens in the left column, key tokens in the right column, one line per (query, key).
DrawList layout_lines(const AttentionRecord& record, const std::string& tensor, const LinesOptions& opt);
void render_lines(const AttentionRecord& record, const std::string& tensor, const LinesOptions& opt,
                  const std::filesystem::path& out, const PaintOptions& paint = {});

// ---- overlay: attention over the record's image ----

// Which patch-grid map of a vision record to overlay (for rollout, flow or gradient maps compute
// the [rows, cols] map yourself, e.g. in analysis code, and pass it as OverlayPanel::map).
struct OverlaySelection {
  std::string tensor;       // "" = the last layer of the record's self-attention tensors
  int head = 0;
  bool mean_heads = false;
  int query = 0;            // query token whose attention is shown (0 = CLS when prefix_tokens = 1)
};

// The attention of `query` to the patch tokens as a [patch_rows, patch_cols] map (prefix tokens
// such as CLS are dropped from the keys). Throws UsageError when the record has no image or patch
// grid, or the key count is not prefix_tokens + rows * cols.
Mat patch_map(const AttentionRecord& record, const OverlaySelection& sel);

// The tensor an overlay reads: sel.tensor, or by default the self-attention tensor of the highest
// layer (e.g. "vit.layer3.self").
const AttentionTensor& overlay_tensor(const AttentionRecord& record, const std::string& name);

// A function that computes a map from a record (CLS attention, rollout, flow, ...): [rows, cols].
using OverlayMapFn = std::function<Mat(const AttentionRecord&)>;

struct OverlayOptions {
  std::string cmap = "inferno";
  double alpha = 0.55;        // opacity of the colormapped attention over the grey image
  ScaleOptions scale;         // per map: Global = each map to its own [min, max]
  bool shared_scale = false;  // one range over all panels (when comparing maps of one image)
  double panel = 112;         // panel side in points
  int columns = 0;            // panels per row in a multi-panel figure; 0 = automatic
  std::string title;          // figure title ("" = none)
  bool colorbar = false;      // a colorbar under the panels (meaningful with shared_scale)
};

// One panel: an image, an optional map laid over it, and a caption under it.
struct OverlayPanel {
  RecordImage image;          // pixels in [0, 1]
  Mat map;                    // [rows, cols] patch grid, upsampled bilinearly; empty = image only
  std::string caption;        // e.g. "head 2", "true 7 · pred 7"
  Color caption_color = kBlack;  // e.g. red for a wrong prediction
};

// [image | head 0 | ... | head H-1 | mean of heads] of one record for the selected tensor and query
// (append e.g. a rollout panel yourself).
std::vector<OverlayPanel> overlay_head_strip(const AttentionRecord& record, const OverlaySelection& sel);

// The blended pixels of one panel: the grey image upsampled to side x side, the map upsampled
// bilinearly (cell centres at (i + 0.5) / rows), colormapped and alpha-blended; the result fits in
// side x side keeping the image's aspect ratio. [<= side, <= side, 4].
Raster blend_overlay(const RecordImage& image, const Mat& map, const ValueRange& range,
                     const OverlayOptions& opt, int side);

// A figure of panels in rows of opt.columns: a single overlay, the strip
// [digit | each head | rollout], or a grid of many digits with labels under each.
DrawList layout_overlay(const std::vector<OverlayPanel>& panels, const OverlayOptions& opt);
void render_overlay(const std::vector<OverlayPanel>& panels, const OverlayOptions& opt,
                    const std::filesystem::path& out, const PaintOptions& paint = {});

// One panel per record (e.g. all samples of an MNIST record file), map = fn(record) (default:
// patch_map with `sel`), caption "true L · pred P" from metadata "label"/"prediction" when present.
std::vector<OverlayPanel> overlay_panels(const std::vector<AttentionRecord>& records,
                                         const OverlaySelection& sel, const OverlayMapFn& fn = {});

// ---- evolution: one record per training snapshot ----

struct EvolutionOptions {
  Selection sel;              // records without an image: the heatmap's tensor/head
  OverlaySelection overlay;   // records with an image: which map is laid over it ...
  OverlayMapFn map;           // ... or this function of the record (rollout, ...); default patch_map
  std::string cmap;           // "" = viridis (heatmaps) / inferno (overlays)
  double panel = 160;         // overlay panel side in points
};
// One figure per snapshot record, all on ONE colour scale (the finite min..max over every
// snapshot's matrix), titled from the metadata "step" / "epoch" when present. Throws UsageError
// when there are no records or the matrices change shape between snapshots.
std::vector<DrawList> evolution_frames(const std::vector<AttentionRecord>& snapshots, const EvolutionOptions& opt);
// The title of snapshot k: "step S · epoch E" (E = epochs begun, 1-based), "step 0 · before
// training" for the snapshot taken before the first update, "step S" without an epoch, "snapshot k"
// without a step.
std::string evolution_frame_title(const AttentionRecord& snapshot, size_t k);

// ---- confusion matrix ----

struct ConfusionOptions {
  std::string title;                 // "" = none
  std::vector<std::string> labels;   // class names; empty = 0, 1, 2, ...
  std::string colormap = "viridis";
  double cell = 38;                  // points per cell
};

// counts[t][p]: how often true class t was predicted as p (square). Integer counts in the cells,
// true class down, predicted across; the colour scale ends at the largest off-diagonal count so
// the errors stay visible beside the large diagonal (diagonal cells saturate). Throws
// std::invalid_argument on a ragged or empty matrix or a label count that does not match.
DrawList layout_confusion(const std::vector<std::vector<long>>& counts, const ConfusionOptions& opt);
void render_confusion(const std::vector<std::vector<long>>& counts, const ConfusionOptions& opt,
                      const std::filesystem::path& out, const PaintOptions& paint = {});

// ---- line chart ----

// One line of a chart: points (x[i], y[i]); non-finite points are skipped.
struct LineSeries {
  std::string name;              // legend entry
  std::vector<double> x, y;      // same length
  Color color = kTransparent;    // kTransparent = categorical_color(series index)
};

struct LineChartOptions {
  std::string title, x_label, y_label;   // "" = none
  double width = 420, height = 260;      // plot area in points
  double xmin = NAN, xmax = NAN, ymin = NAN, ymax = NAN;   // NaN = from the data
};

// Axes with a grid at nice ticks, each series as a polyline with dots, a legend to the right.
// Throws std::invalid_argument when there is no series or a series' x and y differ in length.
DrawList layout_line_chart(const std::vector<LineSeries>& series, const LineChartOptions& opt);
void render_line_chart(const std::vector<LineSeries>& series, const LineChartOptions& opt,
                       const std::filesystem::path& out, const PaintOptions& paint = {});

// ---- multi-panel figures ----

// A panel of a composed figure: any DrawList with an optional caption under it.
struct FigurePanel {
  DrawList content;
  std::string caption;
};

struct FigureOptions {
  int columns = 0;            // 0 = all panels in one row
  double gap = 16;            // points between panels
  std::string title;          // "" = none
  double caption_size = 11;
};

// Places panels left to right, top to bottom (e.g. the same sentence pair under four attention
// kinds side by side: four layout_heatmap lists).
DrawList compose(const std::vector<FigurePanel>& panels, const FigureOptions& opt);

// ---- reusable pieces for other views (e.g. `render text`) ----

// A vertical colorbar with ticks at "nice" values in the rectangle (x, y, w, h) plus its tick
// labels to the right; returns the total width used. If non_finite > 0, a magenta swatch
// "NaN/Inf: N" is drawn under it.
double add_colorbar(DrawList& list, double x, double y, double w, double h, const Colormap& cmap,
                    const ValueRange& range, const std::string& label, int non_finite = 0);
// "Nice" tick values covering [lo, hi] (1, 2, 2.5, 5 x 10^k steps), at most max_ticks.
std::vector<double> nice_ticks(double lo, double hi, int max_ticks = 6);
// Formats a value for a tick or cell label with `digits` significant digits, trimming zeros.
std::string format_value(double v, int digits = 2);
// A title line at the top of a figure (centred), returns its height.
double add_title(DrawList& list, const std::string& title, double width, double y, double size = 13);
// For a title placed once the figure's width is known (add_fitted_title): the height to reserve,
// the title's one-line height plus `gap` below it; 0 when there is no title ("" or "-").
double title_space(const std::string& title, double gap, double size = 13);
// Widens `list` so that `title` fits on one line with `margin` either side (at most 900 pt wide),
// then adds it centred at y = margin. Does nothing when there is no title ("" or "-").
void add_fitted_title(DrawList& list, const std::string& title, double margin, double size = 13);

}  // namespace attnviz::render
