// Training curves as a standalone SVG: the loss of every step (thin and light, since a
// single step's loss is noisy), a smoothed curve through it, and the validation loss.
// Also several runs' curves in one chart, each named in a legend (`microgpt compare`).
// Not here: reading logs (the caller passes the numbers it has), log-scale axes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace microgpt {

// (step, loss) pairs in step order.
using LossSeries = std::vector<std::pair<int64_t, double>>;

// Most points a curve is drawn with. A longer series is cut into this many / 2 runs of
// consecutive points, each drawn as its lowest and highest point, so the band of noise
// keeps its width while a million steps stay a file of a few hundred kilobytes.
inline constexpr int64_t kMaxDrawnPoints = 2000;

// Writes the chart to `path` (UTF-8 `title` on top): axes with ticks, "step" and
// "loss" titles, a legend. Points whose loss is NaN or infinite are skipped; an empty
// `val` draws no validation curve; empty series give empty axes. The smoothed curve is
// an exponential moving average over about 1/25 of the steps (at least 1, at most 500
// points), with the start-up bias removed. Throws Error when the file cannot be
// written.
void write_loss_plot_svg(const std::string& path, const LossSeries& train, const LossSeries& val,
                         std::string_view title = "Training loss");

// One named curve of several (drawn as a line with dots at its points).
struct NamedSeries {
  std::string name;
  LossSeries points;
};

// Writes the curves to `path` in one chart with a legend, in a palette of 8 colours
// (a ninth curve reuses the first, dashed). Non-finite points are skipped. Throws Error
// when the file cannot be written.
void write_curves_svg(const std::string& path, const std::vector<NamedSeries>& curves, std::string_view title,
                      std::string_view y_title = "validation loss");

}  // namespace microgpt
