// Umbrella header of the engine: layers, attention, blocks, losses, optimizers.
#pragma once
#include <attnviz/nn/attention.hpp>
#include <attnviz/nn/blocks.hpp>
#include <attnviz/nn/gradcheck.hpp>
#include <attnviz/nn/layers.hpp>
#include <attnviz/nn/loss.hpp>
#include <attnviz/nn/ops.hpp>
#include <attnviz/nn/optim.hpp>
#include <attnviz/nn/param.hpp>
#include <attnviz/nn/rng.hpp>
