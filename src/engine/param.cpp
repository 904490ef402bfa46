// Param and ParamSet: registration by scoped name, zeroing, global norm, safetensors save/load.
#include <attnviz/error.hpp>
#include <attnviz/engine/param.hpp>

#include <cmath>
#include <stdexcept>

namespace attnviz::nn {

Param::Param(int rows, int cols, bool decay) : decay(decay) { resize(rows, cols); }

void Param::resize(int rows, int cols) {
  value = Mat::Zero(rows, cols);
  grad = Mat::Zero(rows, cols);
}

std::string scoped(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

void ParamSet::add(Param& p, const std::string& name) {
  if (find(name)) throw std::logic_error("duplicate parameter name '" + name + "'");
  p.name = name;
  if (p.grad.rows() != p.value.rows() || p.grad.cols() != p.value.cols())
    p.grad = Mat::Zero(p.value.rows(), p.value.cols());
  params_.push_back(&p);
}

Param* ParamSet::find(const std::string& name) const {
  for (Param* p : params_)
    if (p->name == name) return p;
  return nullptr;
}

void ParamSet::zero_grad() {
  for (Param* p : params_) p->grad.setZero();
}

std::size_t ParamSet::count() const {
  std::size_t n = 0;
  for (Param* p : params_) n += static_cast<std::size_t>(p->value.size());
  return n;
}

double ParamSet::grad_norm() const {
  double s = 0;
  for (Param* p : params_) s += p->grad.cast<double>().squaredNorm();
  return std::sqrt(s);
}

void ParamSet::save_into(StFile& file) const {
  for (Param* p : params_) {
    StTensor t;
    t.name = p->name;
    t.dtype = "F32";
    t.shape = {p->value.rows(), p->value.cols()};
    t.data.assign(p->value.data(), p->value.data() + p->value.size());
    file.tensors.push_back(std::move(t));
  }
}

void ParamSet::load_from(const StFile& file, const std::string& path) {
  for (Param* p : params_) {
    const StTensor* t = file.find(p->name);
    if (!t) throw InputError(path, "missing tensor '" + p->name + "'");
    if (static_cast<Eigen::Index>(t->data.size()) != p->value.size()) {
      std::string found = "[";
      for (size_t i = 0; i < t->shape.size(); ++i) found += (i ? ", " : "") + std::to_string(t->shape[i]);
      found += "]";
      throw InputError(path, "tensor '" + p->name + "': expected shape [" +
                                 std::to_string(p->value.rows()) + ", " +
                                 std::to_string(p->value.cols()) + "], found " + found);
    }
    for (float x : t->data)
      if (!std::isfinite(x)) throw InputError(path, "tensor '" + p->name + "' holds NaN or infinity");
    std::copy(t->data.begin(), t->data.end(), p->value.data());
  }
}

}  // namespace attnviz::nn
