// A statistical word aligner as a baseline for attention alignments: IBM Model 1 (Brown et al.
// 1993), optionally with the diagonal prior of fast_align's reparameterized Model 2 (Dyer,
// Chahuneau and Smith 2013, "A Simple, Fast, and Effective Reparameterization of IBM Model 2"),
// trained by EM in both directions and symmetrized (Koehn et al. 2005: intersection, union,
// grow-diag, grow-diag-final, grow-diag-final-and).
#pragma once
#include <attnviz/analysis/alignment.hpp>
#include <attnviz/data/corpus.hpp>
#include <attnviz/io/pharaoh.hpp>

#include <memory>
#include <string>
#include <vector>

namespace attnviz {

enum class Symmetrize { Forward, Reverse, Intersect, Union, GrowDiag, GrowDiagFinal, GrowDiagFinalAnd };
Symmetrize parse_symmetrize(const std::string& name);   // throws UsageError listing the names
const char* symmetrize_name(Symmetrize s);

struct StatAlignOptions {
  int iterations = 5;              // EM iterations per direction
  // fast_align's diagonal tension lambda: p(a_j = i) ∝ exp(-lambda |i/m - j/n|) over the source
  // words, with p0 for the NULL word. lambda = 0 (and p0 = 1/(m+1)) is plain IBM Model 1.
  // fast_align starts at 4 and re-estimates it; here it stays fixed (said so in the README).
  double diagonal_tension = 4.0;
  double null_probability = 0.08;  // p0 (fast_align's default); ignored when diagonal_tension = 0
  Symmetrize symmetrize = Symmetrize::GrowDiagFinalAnd;
  std::string corpus_path;         // named in the message when the corpus is too large (--max-mib)
};

// Trains on every pair of `pairs` (sources and targets as tokens) and returns the symmetrized
// alignment of each pair, sure links only (source i, target j, 0-based).
std::vector<Alignment> train_and_align(const std::vector<SentencePair>& pairs, const StatAlignOptions& opt = {});

// The two directional Viterbi alignments, for tests and for other symmetrizations.
struct DirectionalAlignments {
  std::vector<Alignment> forward;   // target word j -> source word (source-to-target model p(f|e))
  std::vector<Alignment> reverse;   // source word i -> target word (p(e|f)), links stored as (i, j)
};
DirectionalAlignments train_directions(const std::vector<SentencePair>& pairs, const StatAlignOptions& opt = {});

// Combines a forward and a reverse alignment of one sentence pair of sizes (m source, n target).
Alignment symmetrize(const Alignment& forward, const Alignment& reverse, int m, int n, Symmetrize how);

// Attention of two models of opposite directions, symmetrized like the statistical aligner's two
// directions: forward [n target, m source] is the source->target model's attention (rows = its
// target words), reverse [m, n] the target->source model's on the same pair (rows = the forward's
// source words).
//   Combine::Product (default): one matrix, forward ⊙ reverseᵀ (a link needs weight in both
//     directions, as awesome-align multiplies its two softmaxes); its rows give the forward links
//     and its columns the reverse links, each extracted with `opt`.
//   Combine::None: each model's own matrix is extracted with `opt` (forward rows, reverse rows).
// The two directions' links are then combined by `how` (Koehn et al. 2005), as for the aligner.
// Links are sorted by target, then source. Throws std::invalid_argument when the shapes do not match.
enum class Combine { Product, None };
Combine parse_combine(const std::string& name);   // "product" | "none"; throws UsageError
const char* combine_name(Combine c);
Alignment symmetrize_attention(const Mat& forward, const Mat& reverse, const AlignOptions& opt, Symmetrize how,
                               Combine combine = Combine::Product);

}  // namespace attnviz
