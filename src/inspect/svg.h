// Helpers for writing standalone SVG by hand, shared by the plots of src/inspect:
// XML escaping, compact numbers, "nice" axis ticks, a frame with grid, ticks and
// titles, and the colour scales. Everything is appended to one std::string.
// Not here: any layout engine or text measuring (label widths are estimated from the
// font size), and nothing that fetches fonts, scripts or images: every file stands alone.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace microgpt {

// Escapes & < > " ' so that UTF-8 text is safe both as element text and inside a
// quoted attribute value.
std::string xml_escape(std::string_view utf8);

// A coordinate or size with at most 2 decimals, trailing zeros dropped, never "-0"
// (SVG files stay small; a hundredth of a pixel is below what any screen shows).
std::string svg_num(double v);

// One axis of a plot: the data range widened to whole ticks, and the ticks.
struct PlotAxis {
  double lo = 0;
  double hi = 1;
  double step = 1;  // distance between ticks: 1, 2 or 5 times a power of ten
  std::vector<double> ticks;
  // Maps a data value to a pixel between r0 (at lo) and r1 (at hi).
  double map(double v, double r0, double r1) const { return r0 + (v - lo) * (r1 - r0) / (hi - lo); }
};

// An axis covering [lo, hi] with about `target` ticks. A range of zero width (one
// point) or non-finite ends get a unit range around the value; `pad` widens the range
// by that share at each end before rounding to ticks, so points do not sit on the frame.
PlotAxis make_axis(double lo, double hi, int target, double pad = 0.0);

// A tick's text: as many decimals as the tick step needs, "1.5e+06" style from a
// million up.
std::string tick_label(double v, double step);

// The rectangle a plot's data is drawn in, in pixels.
struct PlotArea {
  double left = 0;
  double top = 0;
  double width = 0;
  double height = 0;
  double x(const PlotAxis& a, double v) const { return a.map(v, left, left + width); }
  double y(const PlotAxis& a, double v) const { return a.map(v, top + height, top); }
};

// <?xml ...?>, the <svg> element with its namespace and size, a <title> and a white
// background.
void svg_begin(std::string& out, double width, double height, std::string_view title);
void svg_end(std::string& out);

// <text x y attrs>escaped text</text>; attrs is raw attribute text (may be empty).
void svg_text(std::string& out, double x, double y, std::string_view utf8, std::string_view attrs = "");

// Grid lines, a frame, tick marks with labels and the two axis titles of `area`.
void svg_axes(std::string& out, const PlotArea& area, const PlotAxis& x, const PlotAxis& y,
              std::string_view x_title, std::string_view y_title);

// "#rrggbb" on a diverging scale: -1 blue, 0 near-white, +1 red; outside [-1, 1]
// clamps; NaN is grey.
std::string diverging_color(double v);

}  // namespace microgpt
