// The built-in parallel corpus: a small grammar of English-like sentences and their translation
// into a made-up verb-second target language, with the exact gold alignment of every pair.
//
// Phenomena (each one moves or merges tokens, so attention has to do real work):
//   adjective after the noun        the red car        -> das auto rot
//   verb-final subordinate clauses  because he sees it -> weil er es sieht
//   separable particle to the end   he turns off the lamp -> er macht die lampe aus
//   one word becomes two            tomorrow -> am morgen, grandmother -> gross mutter
//   two words become one            apple tree -> apfelbaum, post office -> postamt
//   an article that disappears      a dog -> hund   ("a" gets only possible links to the noun)
//   gender agreement                the dog -> der hund  ("der" is sure to "the", possible to "dog":
//                                   the noun decides the article's form)
//   negation moved to clause end    does not see the cat -> sieht die katze nicht
//                                   ("does" is a possible link of the verb, "see" a sure one)
#include <attnviz/data/corpus.hpp>
#include <attnviz/engine/rng.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace attnviz {

namespace {

struct Noun {
  const char* en;      // first (or only) English word
  const char* en2;     // second English word of a compound that becomes one target word, or null
  const char* tg;      // target word
  const char* tg2;     // second target word when one English word becomes two, or null
  char gender;         // m f n: the target's definite article der / die / das
};

const Noun kNouns[] = {
    {"dog", nullptr, "hund", nullptr, 'm'},        {"cat", nullptr, "katze", nullptr, 'f'},
    {"house", nullptr, "haus", nullptr, 'n'},      {"book", nullptr, "buch", nullptr, 'n'},
    {"man", nullptr, "mann", nullptr, 'm'},        {"woman", nullptr, "frau", nullptr, 'f'},
    {"child", nullptr, "kind", nullptr, 'n'},      {"bird", nullptr, "vogel", nullptr, 'm'},
    {"car", nullptr, "auto", nullptr, 'n'},        {"tree", nullptr, "baum", nullptr, 'm'},
    {"apple", nullptr, "apfel", nullptr, 'm'},     {"lamp", nullptr, "lampe", nullptr, 'f'},
    {"door", nullptr, "tuer", nullptr, 'f'},       {"teacher", nullptr, "lehrer", nullptr, 'm'},
    {"letter", nullptr, "brief", nullptr, 'm'},    {"city", nullptr, "stadt", nullptr, 'f'},
    {"horse", nullptr, "pferd", nullptr, 'n'},     {"table", nullptr, "tisch", nullptr, 'm'},
    {"key", nullptr, "schluessel", nullptr, 'm'},  {"garden", nullptr, "garten", nullptr, 'm'},
    {"apple", "tree", "apfelbaum", nullptr, 'm'},  {"post", "office", "postamt", nullptr, 'n'},
    {"bus", "stop", "haltestelle", nullptr, 'f'},  {"light", "switch", "lichtschalter", nullptr, 'm'},
    {"grandmother", nullptr, "gross", "mutter", 'f'}, {"grandfather", nullptr, "gross", "vater", 'm'},
};

struct Adjective {
  const char *en, *tg;
};
const Adjective kAdjectives[] = {{"big", "riesig"}, {"small", "klein"}, {"red", "rot"},     {"old", "alt"},
                                 {"new", "neu"},    {"green", "gruen"}, {"happy", "froh"}, {"dark", "dunkel"}};

struct Verb {
  const char *en3, *en_base, *en_particle;  // "turns", "turn", "off" (particle null for simple verbs)
  const char *tg, *tg_particle;             // "macht", "aus"
};
const Verb kVerbs[] = {
    {"sees", "see", nullptr, "sieht", nullptr},     {"likes", "like", nullptr, "mag", nullptr},
    {"finds", "find", nullptr, "findet", nullptr},  {"buys", "buy", nullptr, "kauft", nullptr},
    {"has", "have", nullptr, "hat", nullptr},       {"reads", "read", nullptr, "liest", nullptr},
    {"paints", "paint", nullptr, "malt", nullptr},  {"carries", "carry", nullptr, "traegt", nullptr},
    {"washes", "wash", nullptr, "waescht", nullptr},
    {"picks", "pick", "up", "hebt", "auf"},         {"turns", "turn", "off", "macht", "aus"},
    {"puts", "put", "on", "zieht", "an"},           {"throws", "throw", "away", "wirft", "weg"},
    {"looks", "look", "at", "schaut", "an"},
};

struct Adverb {
  const char *en, *tg, *tg2;  // tg2: second target word (one word becomes two), or null
};
const Adverb kAdverbs[] = {{"today", "heute", nullptr},  {"often", "oft", nullptr},     {"there", "dort", nullptr},
                           {"tomorrow", "am", "morgen"}, {"again", "noch", "mal"}};

struct Pronoun {
  const char *en, *tg;
};
const Pronoun kPronouns[] = {{"he", "er"}, {"she", "sie"}};

struct Conjunction {
  const char *en, *tg;
};
const Conjunction kConjunctions[] = {{"because", "weil"}, {"when", "wenn"}, {"although", "obwohl"}};

template <class T, size_t N>
constexpr int count_of(const T (&)[N]) {
  return static_cast<int>(N);
}

// Builds one pair: source tokens first (they get their indices), then the target in target order.
struct Builder {
  SentencePair p;
  int s(const std::string& w) {
    p.source.push_back(w);
    return static_cast<int>(p.source.size()) - 1;
  }
  void t(const std::string& w, std::initializer_list<int> sure, std::initializer_list<int> possible = {}) {
    const int j = static_cast<int>(p.target.size());
    p.target.push_back(w);
    for (int i : sure) p.gold->links.push_back({i, j, true});
    for (int i : possible) p.gold->links.push_back({i, j, false});
  }
};

struct NounPhrase {
  int pronoun = -1, pronoun_idx = -1;   // a pronoun instead of a noun phrase
  bool definite = true;
  int det_idx = -1;
  int adj = -1, adj_idx = -1;
  int noun = 0, noun_idx = -1, noun_idx2 = -1;
};

NounPhrase source_np(nn::Rng& rng, Builder& b, bool allow_pronoun) {
  NounPhrase np;
  if (allow_pronoun && rng.uniform() < 0.2f) {
    np.pronoun = rng.below(count_of(kPronouns));
    np.pronoun_idx = b.s(kPronouns[np.pronoun].en);
    return np;
  }
  np.definite = rng.uniform() < 0.7f;
  np.det_idx = b.s(np.definite ? "the" : "a");
  if (rng.uniform() < 0.4f) {
    np.adj = rng.below(count_of(kAdjectives));
    np.adj_idx = b.s(kAdjectives[np.adj].en);
  }
  np.noun = rng.below(count_of(kNouns));
  np.noun_idx = b.s(kNouns[np.noun].en);
  if (kNouns[np.noun].en2) np.noun_idx2 = b.s(kNouns[np.noun].en2);
  if (!np.definite) {  // "a apple" -> "an apple" (the word after the article decides)
    const char c = np.adj >= 0 ? kAdjectives[np.adj].en[0] : kNouns[np.noun].en[0];
    if (c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u') b.p.source[np.det_idx] = "an";
  }
  return np;
}

// Target noun phrase: [article] noun [noun2] [adjective]. The indefinite article disappears.
void target_np(const NounPhrase& np, Builder& b) {
  if (np.pronoun >= 0) {
    b.t(kPronouns[np.pronoun].tg, {np.pronoun_idx});
    return;
  }
  const Noun& n = kNouns[np.noun];
  // The article's form (der/die/das) is chosen by the noun's gender, so the noun is a possible link.
  if (np.definite) {
    const char* art = n.gender == 'm' ? "der" : n.gender == 'f' ? "die" : "das";
    np.noun_idx2 >= 0 ? b.t(art, {np.det_idx}, {np.noun_idx, np.noun_idx2}) : b.t(art, {np.det_idx}, {np.noun_idx});
  }
  auto noun_word = [&](const char* w) {
    const bool two = np.noun_idx2 >= 0;  // two English words become this one target word
    if (np.definite) two ? b.t(w, {np.noun_idx, np.noun_idx2}) : b.t(w, {np.noun_idx});
    else two ? b.t(w, {np.noun_idx, np.noun_idx2}, {np.det_idx}) : b.t(w, {np.noun_idx}, {np.det_idx});
  };
  noun_word(n.tg);
  if (n.tg2) noun_word(n.tg2);
  if (np.adj >= 0) b.t(kAdjectives[np.adj].tg, {np.adj_idx});
}

struct Clause {
  NounPhrase subj, obj;
  int verb = 0, verb_idx = -1, particle_idx = -1;
  bool negated = false;
  int does_idx = -1, not_idx = -1;
  int adverb = -1, adverb_idx = -1;
};

Clause source_clause(nn::Rng& rng, Builder& b) {
  Clause c;
  c.subj = source_np(rng, b, true);
  c.verb = rng.uniform() < 0.35f ? 9 + rng.below(count_of(kVerbs) - 9) : rng.below(9);
  const Verb& v = kVerbs[c.verb];
  c.negated = rng.uniform() < 0.2f;
  if (c.negated) {
    c.does_idx = b.s("does");
    c.not_idx = b.s("not");
    c.verb_idx = b.s(v.en_base);
  } else {
    c.verb_idx = b.s(v.en3);
  }
  if (v.en_particle) c.particle_idx = b.s(v.en_particle);
  c.obj = source_np(rng, b, false);
  if (rng.uniform() < 0.3f) {
    c.adverb = rng.below(count_of(kAdverbs));
    c.adverb_idx = b.s(kAdverbs[c.adverb].en);
  }
  return c;
}

void target_verb(const Clause& c, Builder& b) {
  if (c.negated) b.t(kVerbs[c.verb].tg, {c.verb_idx}, {c.does_idx});
  else b.t(kVerbs[c.verb].tg, {c.verb_idx});
}

// Main clause: subject verb object [adverb] [nicht] [particle]   (verb second, particle last).
// Subordinate: conj subject object [adverb] [nicht] [particle] verb   (verb final).
void target_clause(const Clause& c, Builder& b, bool subordinate) {
  target_np(c.subj, b);
  if (!subordinate) target_verb(c, b);
  target_np(c.obj, b);
  if (c.adverb >= 0) {
    const Adverb& a = kAdverbs[c.adverb];
    b.t(a.tg, {c.adverb_idx});
    if (a.tg2) b.t(a.tg2, {c.adverb_idx});
  }
  if (c.negated) b.t("nicht", {c.not_idx});
  if (c.particle_idx >= 0) b.t(kVerbs[c.verb].tg_particle, {c.particle_idx});
  if (subordinate) target_verb(c, b);
}

SentencePair one_pair(nn::Rng& rng) {
  Builder b;
  b.p.gold = Alignment{};
  Clause main = source_clause(rng, b);
  int comma_idx = -1, conj = -1, conj_idx = -1;
  Clause sub;
  const bool has_sub = rng.uniform() < 0.35f;
  if (has_sub) {
    comma_idx = b.s(",");
    conj = rng.below(count_of(kConjunctions));
    conj_idx = b.s(kConjunctions[conj].en);
    sub = source_clause(rng, b);
  }
  const int period_idx = b.s(".");
  target_clause(main, b, false);
  if (has_sub) {
    b.t(",", {comma_idx});
    b.t(kConjunctions[conj].tg, {conj_idx});
    target_clause(sub, b, true);
  }
  b.t(".", {period_idx});
  return std::move(b.p);
}

std::uint64_t fnv1a(const std::vector<std::string>& tokens) {
  std::uint64_t h = 1469598103934665603ull;
  for (const auto& t : tokens) {
    for (unsigned char c : t) h = (h ^ c) * 1099511628211ull;
    h = (h ^ ' ') * 1099511628211ull;
  }
  return h;
}

}  // namespace

ParallelCorpus generate_synthetic(const SyntheticOptions& opt) {
  ParallelCorpus corpus;
  nn::Rng rng(opt.seed);
  corpus.pairs.reserve(opt.count > 0 ? opt.count : 0);
  while (static_cast<int>(corpus.pairs.size()) < opt.count) {
    SentencePair p = one_pair(rng);
    if (opt.split != SyntheticSplit::All) {
      const bool test = fnv1a(p.source) % 10 == 0;
      if (test != (opt.split == SyntheticSplit::Test)) continue;
    }
    corpus.pairs.push_back(std::move(p));
  }
  return corpus;
}

}  // namespace attnviz
