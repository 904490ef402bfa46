// Subword pieces to words: attention of records from WordPiece / BPE models read per word.
#pragma once
#include <attnviz/record/record.hpp>

#include <string>
#include <vector>

namespace attnviz {

// Word index of each token. scheme "wordpiece": a "##" piece continues the previous word; "bpe":
// a token starting with '·' (the displayed space of 'Ġ' / '▁') starts a word, and so does a change
// between letters, digits and other characters (GPT-2's pre-tokenizer splits there); "" = guess from
// the tokens ("##" pieces -> wordpiece, '·' -> bpe, a piece ending in "@@" -> "bpe@@"); "bpe@@":
// subword-nmt's pieces (attnviz's own --bpe models): a piece ending in "@@" continues into the
// next. Special tokens ([CLS], <s>, <|endoftext|>) are words of their own (under "bpe@@" only
// when the piece before them has no "@@"). Throws UsageError when no token carries a subword mark.
std::vector<int> word_groups(const std::vector<std::string>& tokens, const std::string& scheme = "");
// The words: pieces joined, "##", the leading '·' and a continuing piece's trailing "@@" removed.
std::vector<std::string> merge_tokens(const std::vector<std::string>& tokens, const std::vector<int>& groups);

// Every tensor whose axes have tokens becomes word x word: attention summed over a word's key pieces
// and averaged over its query pieces (rows still sum to 1). Tokens become words; gradients, which
// do not merge this way, are dropped; metadata "subword_groups" keeps each axis' word index per token.
// Uses metadata "subwords" as the scheme when present. Throws UsageError on an image record.
void merge_subwords(AttentionRecord& record);

}  // namespace attnviz
