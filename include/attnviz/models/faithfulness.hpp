// Faithfulness of saliency maps on an MNIST model (`attnviz eval saliency`): the perturbation test
// of Chefer et al. (2021) and deletion / insertion (Petsiuk et al. 2018), per saliency method and
// for a seeded random order.
#pragma once
#include <attnviz/data/idx.hpp>
#include <attnviz/models/mnist.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace attnviz::models {

struct PerturbationOptions {
  int images = 500;                // the first N images of the set
  int steps = 10;                  // fractions 0, 1/steps, ..., 1 of the patches (10% steps)
  std::uint64_t seed = 1;          // the random baseline's patch orders
  std::vector<std::string> methods = {"random", "cls", "rollout", "flow", "grad-rollout", "chefer"};
};

// One method's curves over the fractions x_k = k / steps of patches masked (set to 0, the MNIST
// background) or inserted, patches ordered by the method's saliency for the model's prediction.
struct MethodCurves {
  std::string method;
  std::vector<double> positive;    // most relevant masked first: share still predicted as before
  std::vector<double> negative;    // least relevant masked first: the same share
  std::vector<double> deletion;    // most relevant masked first: mean probability of the prediction
  std::vector<double> insertion;   // from a blank image, most relevant revealed first: same
  // Trapezoid-rule areas over x in [0, 1], x100. Lower is better for positive and deletion,
  // higher for negative and insertion.
  double auc_positive = 0, auc_negative = 0, auc_deletion = 0, auc_insertion = 0;
  // What the first step (the top x_1 share of patches) masks, averaged over the images: the share
  // of those patches that are blank (every pixel 0: masking them changes nothing) and the share of
  // the image's ink (sum of pixel values) they hold. Explains an ordering on MNIST, whose masked
  // value is its background.
  double top_blank = 0, top_ink = 0;
};

// For one image (row-major, `width` pixels wide, cut into side x side patches of `patch` pixels)
// and a patch order (most relevant first): the share of the first `count` patches that are blank
// and the share of the image's ink in them (0 for an image without ink).
struct TopPatches {
  double blank = 0, ink = 0;
};
TopPatches top_patches(const float* image, int width, int side, int patch, const std::vector<int>& order, int count);

struct FaithfulnessResult {
  std::vector<double> fractions;   // x_k
  std::vector<MethodCurves> methods;
  int images = 0;
  double accuracy = 0;             // accuracy of the unperturbed model on those images (true labels)
};

// Area under y over x_k = k / (n - 1) by the trapezoid rule, x100.
double trapezoid_auc(const std::vector<double>& y);

// Runs the test; UsageError on an unknown method name or a model without patch attention.
FaithfulnessResult perturbation_test(MnistModel& model, const ImageSet& set, const PerturbationOptions& opt);

}  // namespace attnviz::models
