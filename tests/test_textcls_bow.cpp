// Tests of the classification metrics and the bag-of-words logistic-regression baseline.
#include <attnviz/analysis/bow_baseline.hpp>
#include <attnviz/analysis/classify_metrics.hpp>
#include <attnviz/error.hpp>

#include <doctest/doctest.h>

using namespace attnviz;

TEST_CASE("metrics: hand-computed accuracy, per-class F1 and macro-F1") {
  // truth: 0 0 0 1 1 2 ; pred: 0 0 1 1 2 2
  auto m = classification_metrics({0, 0, 0, 1, 1, 2}, {0, 0, 1, 1, 2, 2}, 3);
  CHECK(m.accuracy == doctest::Approx(4.0 / 6));
  CHECK(m.precision[0] == doctest::Approx(1.0));
  CHECK(m.recall[0] == doctest::Approx(2.0 / 3));
  CHECK(m.f1[0] == doctest::Approx(0.8));
  CHECK(m.f1[1] == doctest::Approx(0.5));      // p = 1/2, r = 1/2
  CHECK(m.f1[2] == doctest::Approx(2.0 / 3));  // p = 1/2, r = 1
  CHECK(m.macro_f1 == doctest::Approx((0.8 + 0.5 + 2.0 / 3) / 3));
  CHECK(m.confusion[1][2] == 1);
  CHECK(m.support == std::vector<int>{3, 2, 1});
  // A class never predicted and never present scores 0 (not NaN).
  auto z = classification_metrics({0, 0}, {0, 0}, 2);
  CHECK(z.f1[1] == 0.0);
  CHECK(z.macro_f1 == doctest::Approx(0.5));
  CHECK_THROWS_AS(classification_metrics({0}, {0, 1}, 2), std::invalid_argument);
  CHECK_THROWS_AS(classification_metrics({0}, {3}, 2), std::invalid_argument);
  CHECK(format_metrics(m, {"a", "b", "c"}).find("macro-F1 0.6556") != std::string::npos);
}

TEST_CASE("bag of words learns keyword classes and generalises to new sentences") {
  const char* fill[] = {"the", "a", "one", "that", "this", "my", "your", "old", "new", "big", "small", "red"};
  const char* kw[3][3] = {{"compiler", "kernel", "bug"}, {"pizza", "cheese", "bread"}, {"judge", "lawyer", "court"}};
  TextDataset ds;
  const char* names[3] = {"computers", "food", "law"};
  for (int i = 0; i < 90; ++i) {
    int c = i % 3;
    std::string t = std::string(fill[i % 12]) + " " + fill[(i * 7 + 3) % 12] + " " + kw[c][(i / 3) % 3] + " " +
                    fill[(i * 5 + 1) % 12];
    ds.add(names[c], t);
  }
  auto sp = stratified_split(ds, 0.3, 3);
  BowModel m = train_bow(sp.train);
  auto pred = m.predict(sp.test.texts);
  auto met = classification_metrics(sp.test.y, pred, 3);
  CHECK(met.accuracy == 1.0);
  CHECK(m.l2_scores.size() == BowOptions{}.l2_grid.size());
  CHECK(m.predict({"The Court rules"})[0] == 2);
  CHECK(m.predict({"bread!"})[0] == 1);

  TextDataset one;
  one.add("x", "a b");
  CHECK_THROWS_AS(train_bow(one), UsageError);
}
