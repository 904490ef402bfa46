// Snapshots of a probe input's attention during training (`train ... --snapshot-every N --probe`).
#include <attnviz/error.hpp>
#include <attnviz/train/snapshots.hpp>

#include <string>

namespace attnviz::train {

Callbacks with_snapshots(Callbacks cb, long every, std::function<AttentionRecord()> probe,
                         std::vector<AttentionRecord>* out) {
  if (every <= 0) throw UsageError("--snapshot-every must be a positive number of steps");
  auto take = [probe, out](long step, int epoch) {
    AttentionRecord r = probe();
    r.metadata["step"] = std::to_string(step);
    r.metadata["epoch"] = std::to_string(epoch);
    r.metadata["snapshot"] = std::to_string(out->size());
    out->push_back(std::move(r));
  };
  Callbacks w = cb;
  w.on_start = [cb, take](int first_epoch, long first_step) {
    if (cb.on_start) cb.on_start(first_epoch, first_step);
    if (first_epoch == 0 && first_step == 0) take(0, 0);   // before the first update: epoch 0
  };
  w.on_step = [cb, take, every](const StepInfo& s) {
    if (cb.on_step) cb.on_step(s);
    if (s.global_step % every == 0) take(s.global_step, s.epoch + 1);
  };
  return w;
}

}  // namespace attnviz::train
