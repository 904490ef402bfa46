// Word alignments from attention: extraction (argmax, itermax, intersect, threshold), scoring
// against gold (precision / recall / AER, Och & Ney 2003), and Pharaoh file helpers (1-based).
#pragma once
#include <attnviz/io/pharaoh.hpp>
#include <attnviz/record/record.hpp>
#include <attnviz/tensor.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace attnviz {

enum class AlignMethod {
  Argmax,     // each target token -> its most-attended source token
  Itermax,    // SimAlign's itermax (Jalili Sabet et al. 2020): mutual argmax, then iterate on the rest
  Intersect,  // links that are the argmax in both directions (row-wise and column-wise)
  Threshold,  // every weight >= threshold
};
AlignMethod parse_align_method(const std::string& name);  // throws UsageError
const char* align_method_name(AlignMethod m);

struct AlignOptions {
  AlignMethod method = AlignMethod::Argmax;
  float threshold = 0.3f;        // Threshold method
  int itermax_iterations = 2;    // Itermax: max_count
  float itermax_alpha = 0.9f;    // Itermax: alpha_ratio
};

// weights: [T, S] (rows = target tokens / queries, columns = source tokens / keys).
// Returns sure links (source i, target j), sorted by target then source. A row that holds a NaN
// gets no link (its argmax means nothing; count them with nan_rows).
Alignment extract_alignment(const Mat& weights, const AlignOptions& opt = {});
// Rows of weights [T, S] that hold at least one NaN (extract_alignment skips them).
int nan_rows(const Mat& weights);

// Tokens that are not words and get no alignment: <eos>, <bos>, <pad>, <s>, </s>, [CLS], [SEP], ...
bool is_special_token(const std::string& token);

// An alignment matrix from a record: which tensor/head, and special tokens dropped so indices
// count real tokens only.
struct RecordAlignmentOptions {
  std::string tensor;        // "" = the last layer's cross-attention ("*.cross"), else the first tensor
  int head = -1;             // -1 = mean over heads
  bool keep_special = false; // keep rows/columns of special tokens
};
struct AlignmentMatrix {
  Mat weights;                                 // [T', S'] after dropping specials
  std::vector<std::string> source, target;     // tokens (empty when the record has none)
  std::string tensor;                          // the tensor used
};
AlignmentMatrix alignment_matrix(const AttentionRecord& record, const RecordAlignmentOptions& opt = {});

// ---- scoring ---------------------------------------------------------------------------------

// Corpus-level counts (summed over sentences), with P = sure ∪ possible gold links:
// precision = |A∩P| / |A|, recall = |A∩S| / |S|, AER = 1 - (|A∩S| + |A∩P|) / (|A| + |S|).
struct AlignmentScore {
  long predicted = 0;     // |A|
  long sure = 0;          // |S|
  long a_and_s = 0;       // |A∩S|
  long a_and_p = 0;       // |A∩P|
  void add(const Alignment& predicted, const Alignment& gold);  // one sentence (duplicates ignored)
  double precision() const;   // 1 when nothing predicted
  double recall() const;      // 1 when no sure gold
  double aer() const;         // 0 when |A| + |S| = 0
};
AlignmentScore score_alignments(const std::vector<Alignment>& predicted, const std::vector<Alignment>& gold);

// ---- Pharaoh files ---------------------------------------------------------------------------

struct PharaohOptions {
  bool one_indexed = false;   // indices in the file start at 1
  std::string flag;           // the CLI option that sets one_indexed (named in hints), e.g. "--gold-one-indexed"
  bool all_sure = false;      // read every link as sure, possible ones too (awesome-align's aer.py --allSure)
};
// read_pharaoh + conversion from 1-based (InputError naming the line for an index 0).
std::vector<Alignment> read_pharaoh_file(const std::filesystem::path& path, const PharaohOptions& opt = {});
// to_pharaoh, adding 1 to every index when one_indexed.
std::string format_pharaoh(const Alignment& a, const PharaohOptions& opt = {});

// Hints on a file's index base, for the caller to print (empty when nothing looks wrong): a file
// read 0-based whose links never use index 0 on either side looks 1-based (awesome-align's and
// fast_align's gold are 1-based, their predictions 0-based). `alignments` are as read.
std::vector<std::string> pharaoh_index_hints(const std::vector<Alignment>& alignments, const std::string& path,
                                             const PharaohOptions& opt);

// The alignment for one sample of a Pharaoh file: its only line, or line `line` (InputError when
// out of range); `hints` (optional) receives pharaoh_index_hints for the whole file.
Alignment read_pharaoh_sample(const std::filesystem::path& path, int line, const PharaohOptions& opt,
                              std::vector<std::string>* hints = nullptr);

// Sentence sizes of the matrices (or token lists) a Pharaoh file describes, line by line.
struct PairSize {
  int source = 0, target = 0;
};
// Throws InputError(path, "line N: link i-j lies outside ...") for the first link past a sentence's
// end; when the file was read 0-based and every link would fit read 1-based, the message names
// opt.flag.
void check_alignments_fit(const std::vector<Alignment>& alignments, const std::vector<PairSize>& sizes,
                          const std::string& path, const PharaohOptions& opt);

// ---- alignment heads ---------------------------------------------------------------------------

// AER of every head of every selected tensor, and of each tensor's mean over heads, over a set of
// records (one gold line per record): which heads align words (cf. Whisper's hand-picked
// "alignment heads"). Tensors: those whose name contains `tensors`, or by default every
// cross-attention ("*.cross"), else every tensor. Special rows/columns are dropped as in `align`.
struct RankHeadsOptions {
  std::string tensors;       // substring filter on tensor names; "" = the cross-attention tensors
  AlignOptions align;        // extraction method
  bool keep_special = false;
  std::string input_path, gold_path;  // named in errors
  PharaohOptions gold_format;         // how the gold was read (for the index-base hint in errors)
};
struct HeadAer {
  std::string tensor;
  int layer = -1;            // parsed from the tensor name (-1 when it has none)
  int head = -1;             // -1 = the mean over heads of the tensor
  AlignmentScore score;
};
struct HeadRanking {
  std::vector<HeadAer> heads;   // every (tensor, head), sorted by AER, lowest first (ties: record order)
  std::vector<HeadAer> means;   // per tensor: the alignment of the mean over heads
  double mean_head_aer = 0;     // the average of the per-head AERs over `heads`
};
// Throws InputError when the records and gold disagree in count (naming gold_path), a gold link lies
// outside its matrix (gold_path), or no tensor matches or a sample lacks one (input_path).
HeadRanking rank_heads(const std::vector<AttentionRecord>& records, const std::vector<Alignment>& gold,
                       const RankHeadsOptions& opt = {});

}  // namespace attnviz
