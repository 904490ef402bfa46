// A terminal progress bar for long work (training, recording): bar, counters, rate and ETA on one
// line, redrawn in place on a terminal and printed every few seconds otherwise.
#pragma once
#include <fmt/core.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <unistd.h>

namespace attnviz::cli {

class ProgressBar {
 public:
  ProgressBar(std::string label, long total, bool enabled = true)
      : label_(std::move(label)), total_(total), enabled_(enabled), tty_(::isatty(STDERR_FILENO)),
        start_(Clock::now()), last_(start_) {}
  // done: units finished so far; extra: free text (loss, accuracy, ...).
  void update(long done, const std::string& extra = "", bool force = false) {
    if (!enabled_) return;
    auto now = Clock::now();
    double since = std::chrono::duration<double>(now - last_).count();
    if (!force && since < (tty_ ? 0.1 : 5.0) && done < total_) return;
    last_ = now;
    double el = std::chrono::duration<double>(now - start_).count();
    double rate = el > 0 ? done / el : 0;
    double eta = rate > 0 ? (total_ - done) / rate : 0;
    const int width = 24;
    int fill = total_ > 0 ? static_cast<int>(width * static_cast<double>(done) / total_) : width;
    std::string bar(fill, '#');
    bar.resize(width, '.');
    fmt::print(stderr, "{}{} [{}] {}/{} {:.0f}/s ETA {} {}{}", tty_ ? "\r" : "", label_, bar, done, total_, rate,
               clock(eta), extra, tty_ ? "\033[K" : "\n");
    std::fflush(stderr);
  }
  void finish(const std::string& extra = "") {
    if (!enabled_) return;
    update(total_, extra, true);
    if (tty_) fmt::print(stderr, "\n");
  }
  double elapsed() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  using Clock = std::chrono::steady_clock;
  static std::string clock(double s) {
    long t = static_cast<long>(s + 0.5);
    return fmt::format("{}:{:02d}", t / 60, static_cast<int>(t % 60));
  }
  std::string label_;
  long total_;
  bool enabled_, tty_;
  Clock::time_point start_, last_;
};

}  // namespace attnviz::cli
