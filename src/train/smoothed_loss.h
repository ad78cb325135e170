// The smoothed training loss a person watches: the progress line's, and the loss chart's
// on microgpt serve's page. One step's loss is noisy (a batch of a few names); this is
// an exponential moving average over about the last 50 steps, divided by the weight its
// zero start has gathered (bias corrected, as Adam's moments are) so that the first
// steps are not pulled towards zero. A loss that is not finite (a diverging run) leaves
// it as it was. The run computes it once per step and tells it in StepFinished.
#pragma once

#include <cmath>

namespace microgpt {

class SmoothedLoss {
 public:
  static constexpr double kDecay = 0.98;  // about the last 1 / (1 - kDecay) = 50 steps

  // Adds a step's loss; the smoothed loss through it.
  double add(double loss) {
    if (std::isfinite(loss)) {
      sum_ = kDecay * sum_ + (1 - kDecay) * loss;
      weight_ = kDecay * weight_ + (1 - kDecay);
    }
    return value();
  }
  // NaN before the first finite loss.
  double value() const { return weight_ > 0 ? sum_ / weight_ : std::nan(""); }

 private:
  double sum_ = 0.0, weight_ = 0.0;
};

}  // namespace microgpt
