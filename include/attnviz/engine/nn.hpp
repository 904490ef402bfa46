// Umbrella header of the engine: layers, attention, blocks, losses, optimizers.
#pragma once
#include <attnviz/engine/attention.hpp>
#include <attnviz/engine/blocks.hpp>
#include <attnviz/engine/layers.hpp>
#include <attnviz/engine/loss.hpp>
#include <attnviz/engine/ops.hpp>
#include <attnviz/engine/optim.hpp>
#include <attnviz/engine/param.hpp>
#include <attnviz/engine/rng.hpp>
