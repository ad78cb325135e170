#include "inspect/plots.h"

#include <algorithm>
#include <cmath>

#include "core/files.h"
#include "inspect/svg.h"

namespace microgpt {

namespace {

struct Point {
  double x;
  double y;
};

std::vector<Point> finite_points(const LossSeries& series) {
  std::vector<Point> out;
  out.reserve(series.size());
  for (const auto& [step, loss] : series) {
    if (std::isfinite(loss)) out.push_back(Point{static_cast<double>(step), loss});
  }
  return out;
}

// At most kMaxDrawnPoints points: each of kMaxDrawnPoints / 2 runs contributes its
// lowest and highest point, in step order.
std::vector<Point> thin_min_max(const std::vector<Point>& pts) {
  if (static_cast<int64_t>(pts.size()) <= kMaxDrawnPoints) return pts;
  const size_t runs = static_cast<size_t>(kMaxDrawnPoints / 2);
  std::vector<Point> out;
  out.reserve(static_cast<size_t>(kMaxDrawnPoints));
  for (size_t r = 0; r < runs; r++) {
    const size_t b = r * pts.size() / runs, e = (r + 1) * pts.size() / runs;
    size_t lo = b, hi = b;
    for (size_t i = b; i < e; i++) {
      if (pts[i].y < pts[lo].y) lo = i;
      if (pts[i].y > pts[hi].y) hi = i;
    }
    out.push_back(pts[std::min(lo, hi)]);
    if (lo != hi) out.push_back(pts[std::max(lo, hi)]);
  }
  return out;
}

// The smoothed curve, sampled at most kMaxDrawnPoints times (the last point of each run).
std::vector<Point> smooth(const std::vector<Point>& pts, int64_t* window) {
  *window = std::clamp<int64_t>(static_cast<int64_t>(pts.size()) / 25, 1, 500);
  const double beta = 1.0 - 1.0 / static_cast<double>(*window);
  std::vector<Point> all(pts.size());
  double ema = 0, weight = 0;
  for (size_t i = 0; i < pts.size(); i++) {
    ema = beta * ema + (1 - beta) * pts[i].y;
    weight = beta * weight + (1 - beta);  // 1 - beta^(i+1): divides out the zero start
    all[i] = Point{pts[i].x, ema / weight};
  }
  if (static_cast<int64_t>(all.size()) <= kMaxDrawnPoints) return all;
  std::vector<Point> out;
  const auto n = static_cast<size_t>(kMaxDrawnPoints);
  for (size_t r = 0; r < n; r++) out.push_back(all[(r + 1) * all.size() / n - 1]);
  return out;
}

void path_of(std::string& out, const std::vector<Point>& pts, const PlotArea& area, const PlotAxis& x,
             const PlotAxis& y, std::string_view attrs) {
  if (pts.empty()) return;
  std::string d;
  d.reserve(pts.size() * 14);
  for (size_t i = 0; i < pts.size(); i++) {
    d += i == 0 ? "M" : "L";
    d += svg_num(area.x(x, pts[i].x)) + " " + svg_num(area.y(y, pts[i].y));
  }
  out += "<path d=\"" + d + "\" fill=\"none\" " + std::string(attrs) + "/>\n";
}

void markers(std::string& out, const std::vector<Point>& pts, const PlotArea& area, const PlotAxis& x,
             const PlotAxis& y, double r, std::string_view color) {
  for (const Point& p : pts) {
    out += "<circle cx=\"" + svg_num(area.x(x, p.x)) + "\" cy=\"" + svg_num(area.y(y, p.y)) + "\" r=\"" +
           svg_num(r) + "\" fill=\"" + std::string(color) + "\"/>\n";
  }
}

}  // namespace

void write_loss_plot_svg(const std::string& path, const LossSeries& train, const LossSeries& val,
                         std::string_view title) {
  const std::vector<Point> tr = finite_points(train), va = finite_points(val);
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto* pts : {&tr, &va}) {
    for (const Point& p : *pts) {
      x0 = std::min(x0, p.x), x1 = std::max(x1, p.x);
      y0 = std::min(y0, p.y), y1 = std::max(y1, p.y);
    }
  }
  const bool empty = tr.empty() && va.empty();
  if (empty) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  const PlotAxis x = make_axis(x0, x1, 8);
  const PlotAxis y = make_axis(y0, y1, 6, 0.03);

  const double width = 900, height = 520;
  const PlotArea area{80, 60, 780, 360};
  std::string out;
  svg_begin(out, width, height, title);
  svg_text(out, width / 2, 32, title, "text-anchor=\"middle\" font-size=\"18\"");
  svg_axes(out, area, x, y, "step", "loss");
  if (empty) {
    svg_text(out, area.left + area.width / 2, area.top + area.height / 2, "no finite loss values to plot",
             "text-anchor=\"middle\" fill=\"#888888\"");
  }
  // Only the data area is drawn into: a curve never runs over the axes' labels.
  out += "<defs><clipPath id=\"data\"><rect x=\"" + svg_num(area.left) + "\" y=\"" + svg_num(area.top) + "\" width=\"" +
         svg_num(area.width) + "\" height=\"" + svg_num(area.height) + "\"/></clipPath></defs>\n";
  out += "<g clip-path=\"url(#data)\">\n";
  int64_t window = 1;
  const std::vector<Point> smoothed = smooth(tr, &window);
  path_of(out, thin_min_max(tr), area, x, y, "stroke=\"#9ecae1\" stroke-width=\"0.8\"");
  path_of(out, smoothed, area, x, y, "stroke=\"#08519c\" stroke-width=\"2\"");
  if (tr.size() == 1) markers(out, tr, area, x, y, 3, "#08519c");
  const std::vector<Point> va_drawn = thin_min_max(va);
  path_of(out, va_drawn, area, x, y, "stroke=\"#e6550d\" stroke-width=\"1.5\"");
  if (va_drawn.size() <= 200) markers(out, va_drawn, area, x, y, 3, "#e6550d");
  out += "</g>\n";

  // Legend under the axes.
  double lx = area.left;
  const double ly = height - 28;
  auto entry = [&](const std::string& color, double stroke, bool dot, const std::string& text) {
    out += "<line x1=\"" + svg_num(lx) + "\" y1=\"" + svg_num(ly) + "\" x2=\"" + svg_num(lx + 24) + "\" y2=\"" +
           svg_num(ly) + "\" stroke=\"" + color + "\" stroke-width=\"" + svg_num(stroke) + "\"/>\n";
    if (dot) out += "<circle cx=\"" + svg_num(lx + 12) + "\" cy=\"" + svg_num(ly) + "\" r=\"3\" fill=\"" + color + "\"/>\n";
    svg_text(out, lx + 30, ly + 4, text);
    lx += 50 + 6.5 * static_cast<double>(text.size());
  };
  entry("#9ecae1", 1.5, false, "training loss, each step");
  entry("#08519c", 2, false, "training loss, smoothed (EMA over ~" + std::to_string(window) + " steps)");
  if (!va.empty()) entry("#e6550d", 1.5, true, "validation loss");
  svg_end(out);
  write_file_atomic(path, out);
}

void write_curves_svg(const std::string& path, const std::vector<NamedSeries>& curves, std::string_view title,
                      std::string_view y_title) {
  static const char* const kPalette[] = {"#1b9e77", "#d95f02", "#7570b3", "#e7298a",
                                         "#66a61e", "#e6ab02", "#a6761d", "#666666"};
  std::vector<std::vector<Point>> pts;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const NamedSeries& c : curves) {
    pts.push_back(finite_points(c.points));
    for (const Point& p : pts.back()) {
      x0 = std::min(x0, p.x), x1 = std::max(x1, p.x);
      y0 = std::min(y0, p.y), y1 = std::max(y1, p.y);
    }
  }
  if (!(x0 <= x1)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  const PlotAxis x = make_axis(x0, x1, 8);
  const PlotAxis y = make_axis(y0, y1, 6, 0.03);
  const double width = 900;
  const double legend_rows = static_cast<double>((curves.size() + 3) / 4);
  const double height = 470 + 22 * legend_rows;
  const PlotArea area{80, 60, 780, 360};
  std::string out;
  svg_begin(out, width, height, title);
  svg_text(out, width / 2, 32, title, "text-anchor=\"middle\" font-size=\"18\"");
  svg_axes(out, area, x, y, "step", y_title);
  for (size_t i = 0; i < curves.size(); i++) {
    const std::string color = kPalette[i % 8];
    const std::string dash = i >= 8 ? " stroke-dasharray=\"6 4\"" : "";
    path_of(out, thin_min_max(pts[i]), area, x, y, "stroke=\"" + color + "\" stroke-width=\"2\"" + dash);
    if (pts[i].size() <= 200) markers(out, pts[i], area, x, y, 2.5, color);
    // the legend, four to a row under the axes
    const double lx = area.left + 195 * static_cast<double>(i % 4);
    const double ly = area.top + area.height + 56 + 22 * static_cast<double>(i / 4);
    out += "<line x1=\"" + svg_num(lx) + "\" y1=\"" + svg_num(ly) + "\" x2=\"" + svg_num(lx + 24) + "\" y2=\"" +
           svg_num(ly) + "\" stroke=\"" + color + "\" stroke-width=\"2\"" + dash + "/>\n";
    svg_text(out, lx + 30, ly + 4, curves[i].name);
  }
  svg_end(out);
  write_file_atomic(path, out);
}

}  // namespace microgpt
