// Param (a named value + gradient) and ParamSet: the registry models use to list, zero, clip,
// save and load their parameters by name (keys of the model's .safetensors file).
#pragma once
#include <attnviz/io/safetensors.hpp>
#include <attnviz/tensor.hpp>

#include <string>
#include <vector>

namespace attnviz::nn {

struct Param {
  std::string name;   // key in the model file, set by collect(): "encoder.layer0.attn.wq.weight"
  Mat value;          // [rows, cols]
  Mat grad;           // same shape; backward passes add (+=) into it
  bool decay = true;  // AdamW weight decay applies (false for biases, LayerNorm, embeddings' pos)

  Param() = default;
  Param(int rows, int cols, bool decay = true);
  void resize(int rows, int cols);   // value and grad set to zero
  void zero_grad() { grad.setZero(); }
  Eigen::Index size() const { return value.size(); }
};

// Non-owning list of a model's parameters, in registration order (the order is part of the
// bitwise-determinism contract: the optimizer and clip walk it in this order).
class ParamSet {
 public:
  // Registers `p` under `name` (sets p.name). Throws std::logic_error on a duplicate name.
  void add(Param& p, const std::string& name);
  const std::vector<Param*>& params() const { return params_; }
  Param* find(const std::string& name) const;   // nullptr if absent
  void zero_grad();
  std::size_t count() const;                     // number of scalars
  double grad_norm() const;                      // global L2 norm of all gradients

  // Appends every parameter as an F32 tensor named by its name, shape [rows, cols].
  void save_into(StFile& file) const;
  // Copies values from `file`. Every parameter must be present with the same element count
  // (shape [rows, cols] or any shape with the same numel, e.g. PyTorch's 1-D biases);
  // otherwise throws InputError(path, "tensor 'x': expected shape [r, c], found [..]").
  void load_from(const StFile& file, const std::string& path);

 private:
  std::vector<Param*> params_;
};

// Joins scoped names: scoped("encoder.layer0", "wq") == "encoder.layer0.wq"; scoped("", "wq") == "wq".
std::string scoped(const std::string& prefix, const std::string& name);

}  // namespace attnviz::nn
