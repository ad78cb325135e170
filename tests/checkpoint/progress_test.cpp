// The progress display of a training run: on a terminal a status line redrawn in place
// ("\r\033[K") and cleared at the end; otherwise plain lines no more often than every
// few seconds, so a short run writes nothing; off writes nothing. The status carries the
// run's smoothed loss: a bias-corrected moving average that skips non-finite losses.
#include "train/progress.h"

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "train/smoothed_loss.h"

namespace microgpt {
namespace {

TEST(Progress, LiveRedrawsInPlaceAndClearsAtTheEnd) {
  std::ostringstream s;
  Progress p(&s, Progress::Mode::live, 0, 10);
  p.step(10, 2.5, 2.5, 100);  // the last step is always drawn
  const std::string drawn = s.str();
  EXPECT_EQ(drawn.rfind("\r\033[K", 0), 0u);
  EXPECT_NE(drawn.find("step 10 / 10 | loss 2.5000 (smoothed 2.5000) | "), std::string::npos) << drawn;
  EXPECT_EQ(drawn.find('\n'), std::string::npos);
  p.finish();
  EXPECT_EQ(s.str(), drawn + "\r\033[K");
}

TEST(Progress, LiveClearsNothingBeforeItDraws) {
  std::ostringstream s;
  Progress p(&s, Progress::Mode::live, 0, 1000);
  p.clear();
  p.finish();
  EXPECT_EQ(s.str(), "");
}

TEST(Progress, PeriodicAndOffWriteNothingInAShortRun) {
  for (const Progress::Mode mode : {Progress::Mode::periodic, Progress::Mode::off}) {
    std::ostringstream s;
    Progress p(&s, mode, 0, 100);
    for (int i = 1; i <= 100; i++) p.step(i, 3.0, 3.0, 10);
    p.clear();
    p.finish();
    EXPECT_EQ(s.str(), "");
  }
  Progress none(nullptr, Progress::Mode::live, 0, 3);  // no stream: off
  none.step(3, 1.0, 1.0, 1);
  none.finish();
}

TEST(SmoothedLoss, IsABiasCorrectedMovingAverageThatSkipsNonFinite) {
  SmoothedLoss s;
  EXPECT_TRUE(std::isnan(s.value()));   // nothing yet
  EXPECT_TRUE(std::isnan(s.add(NAN)));  // a diverged first step: still nothing
  EXPECT_DOUBLE_EQ(s.add(3.0), 3.0);    // the first loss itself, not 0.02 of it
  // (0.98 * 0.02 * 3 + 0.02 * 1) / (0.98 * 0.02 + 0.02)
  EXPECT_NEAR(s.add(1.0), 1.98989898989899, 1e-14);
  EXPECT_NEAR(s.add(INFINITY), 1.98989898989899, 1e-14);
  for (int i = 0; i < 2000; i++) s.add(2.0);  // the start forgotten
  EXPECT_NEAR(s.value(), 2.0, 1e-12);
}

TEST(Progress, StatusShowsTheSmoothedLossOrTheLossBeforeThereIsOne) {
  Progress p(nullptr, Progress::Mode::off, 20, 40);
  p.step(21, 3.0, NAN, 10);
  EXPECT_NE(p.status().find("step 21 / 40 | loss 3.0000 (smoothed 3.0000) | "), std::string::npos) << p.status();
  p.step(22, 1.0, 1.98989898989899, 10);
  EXPECT_NE(p.status().find("step 22 / 40 | loss 1.0000 (smoothed 1.9899) | "), std::string::npos) << p.status();
  EXPECT_NE(p.status().find(" left"), std::string::npos) << p.status();
}

}  // namespace
}  // namespace microgpt
