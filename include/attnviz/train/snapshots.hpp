// Attention over training: a probe input's attention recorded at snapshots while a model trains.
#pragma once
#include <attnviz/record/record.hpp>
#include <attnviz/train/trainer.hpp>

#include <functional>
#include <vector>

namespace attnviz::train {

// Callbacks that call `cb`'s and also append probe() to *out before the first step of a fresh run
// (step 0) and after every `every` optimizer steps (global step % every == 0), with metadata
// "step" (optimizer steps done), "epoch" (1-based epoch in progress) and "snapshot" (0, 1, ...).
// The trainer zeroes gradients before each step, so a probe that runs forward/backward (e.g. to
// record attention gradients) does not change the training: same parameters bit for bit.
Callbacks with_snapshots(Callbacks cb, long every, std::function<AttentionRecord()> probe,
                         std::vector<AttentionRecord>* out);

}  // namespace attnviz::train
