// Internal: the run-time ISA choice shared by the Highway-dispatched kernels.
#pragma once

namespace attnviz::nn::detail {

// Applies ATTNVIZ_ISA (if set) once; every Highway-dispatched entry point calls it before its
// first dispatch, so the variable holds whichever kernel runs first (attention_kernel.cpp).
void init_kernel_isa();

}  // namespace attnviz::nn::detail
