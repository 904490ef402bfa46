// The trainer options every task's options struct shares, copied in one place (internal to src/train).
#pragma once
#include <attnviz/train/trainer.hpp>

namespace attnviz::train {

template <class TaskOptions>
TrainerOptions common_options(const TaskOptions& o) {
  TrainerOptions t;
  t.epochs = o.epochs;
  t.batch = o.batch;
  t.lr = o.lr;
  t.clip = o.clip;
  t.seed = o.seed;
  t.checkpoint = o.checkpoint;
  t.checkpoint_every = o.checkpoint_every;
  t.resume = o.resume;
  return t;
}

}  // namespace attnviz::train
