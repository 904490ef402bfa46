// Basic numeric types shared by the engine, io and analysis: row-major float32 Eigen matrices.
#pragma once
#include <Eigen/Dense>

namespace attnviz {

using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Vec = Eigen::Matrix<float, Eigen::Dynamic, 1>;          // column vector
using RowVec = Eigen::Matrix<float, 1, Eigen::Dynamic>;       // row vector
using MatMap = Eigen::Map<Mat>;
using ConstMatMap = Eigen::Map<const Mat>;

}  // namespace attnviz
