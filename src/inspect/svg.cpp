#include "inspect/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace microgpt {

std::string xml_escape(std::string_view utf8) {
  std::string out;
  out.reserve(utf8.size());
  for (char c : utf8) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string svg_num(double v) {
  if (!std::isfinite(v)) return "0";  // callers skip non-finite data; never write "nan"
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string s = buf;
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

PlotAxis make_axis(double lo, double hi, int target, double pad) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = hi = 0;
  if (lo > hi) std::swap(lo, hi);
  if (hi - lo <= 1e-12 * std::max(1.0, std::abs(lo))) {
    const double half = std::max(0.5, std::abs(lo) * 0.05);
    lo -= half;
    hi += half;
  } else {
    const double w = hi - lo;
    lo -= pad * w;
    hi += pad * w;
  }
  PlotAxis a;
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  a.step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  a.lo = std::floor(lo / a.step) * a.step;
  a.hi = std::ceil(hi / a.step) * a.step;
  if (a.hi <= a.lo) a.hi = a.lo + a.step;
  const auto n = static_cast<int64_t>(std::llround((a.hi - a.lo) / a.step));
  for (int64_t i = 0; i <= n; i++) a.ticks.push_back(a.lo + static_cast<double>(i) * a.step);
  return a;
}

std::string tick_label(double v, double step) {
  if (std::abs(v) < step * 1e-9) v = 0;  // -1e-17 from the tick arithmetic is 0
  char buf[48];
  if (std::abs(v) >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.4g", v);
  } else {
    const int decimals = std::clamp(static_cast<int>(-std::floor(std::log10(step) + 1e-9)), 0, 8);
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  }
  return buf;
}

void svg_begin(std::string& out, double width, double height, std::string_view title) {
  out += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + svg_num(width) + "\" height=\"" +
         svg_num(height) + "\" viewBox=\"0 0 " + svg_num(width) + " " + svg_num(height) +
         "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  out += "<title>" + xml_escape(title) + "</title>\n";
  out += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
}

void svg_end(std::string& out) { out += "</svg>\n"; }

void svg_text(std::string& out, double x, double y, std::string_view utf8, std::string_view attrs) {
  out += "<text x=\"" + svg_num(x) + "\" y=\"" + svg_num(y) + "\"";
  if (!attrs.empty()) {
    out += ' ';
    out += attrs;
  }
  out += '>';
  out += xml_escape(utf8);
  out += "</text>\n";
}

void svg_axes(std::string& out, const PlotArea& area, const PlotAxis& x, const PlotAxis& y,
              std::string_view x_title, std::string_view y_title) {
  const double left = area.left, right = area.left + area.width;
  const double top = area.top, bottom = area.top + area.height;
  out += "<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n";
  for (double t : x.ticks) {
    const std::string px = svg_num(area.x(x, t));
    out += "<line x1=\"" + px + "\" y1=\"" + svg_num(top) + "\" x2=\"" + px + "\" y2=\"" + svg_num(bottom) + "\"/>\n";
  }
  for (double t : y.ticks) {
    const std::string py = svg_num(area.y(y, t));
    out += "<line x1=\"" + svg_num(left) + "\" y1=\"" + py + "\" x2=\"" + svg_num(right) + "\" y2=\"" + py + "\"/>\n";
  }
  out += "</g>\n";
  out += "<rect x=\"" + svg_num(left) + "\" y=\"" + svg_num(top) + "\" width=\"" + svg_num(area.width) +
         "\" height=\"" + svg_num(area.height) + "\" fill=\"none\" stroke=\"#333333\"/>\n";
  out += "<g stroke=\"#333333\">\n";
  for (double t : x.ticks) {
    const std::string px = svg_num(area.x(x, t));
    out += "<line x1=\"" + px + "\" y1=\"" + svg_num(bottom) + "\" x2=\"" + px + "\" y2=\"" + svg_num(bottom + 5) + "\"/>\n";
  }
  for (double t : y.ticks) {
    const std::string py = svg_num(area.y(y, t));
    out += "<line x1=\"" + svg_num(left - 5) + "\" y1=\"" + py + "\" x2=\"" + svg_num(left) + "\" y2=\"" + py + "\"/>\n";
  }
  out += "</g>\n";
  out += "<g fill=\"#333333\" font-size=\"11\">\n";
  for (double t : x.ticks) svg_text(out, area.x(x, t), bottom + 18, tick_label(t, x.step), "text-anchor=\"middle\"");
  for (double t : y.ticks) svg_text(out, left - 8, area.y(y, t) + 4, tick_label(t, y.step), "text-anchor=\"end\"");
  out += "</g>\n";
  svg_text(out, left + area.width / 2, bottom + 38, x_title, "text-anchor=\"middle\" font-size=\"13\"");
  const double ty = top + area.height / 2, tx = left - 52;
  svg_text(out, tx, ty, y_title,
           "text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 " + svg_num(tx) + " " + svg_num(ty) + ")\"");
}

std::string diverging_color(double v) {
  // ColorBrewer's RdBu ends and a light grey middle, so that 0 stays visible on white.
  struct Rgb {
    double r, g, b;
  };
  const Rgb blue{33, 102, 172}, mid{247, 247, 247}, red{178, 24, 43};
  Rgb c{150, 150, 150};
  if (!std::isnan(v)) {
    const double t = std::clamp(v, -1.0, 1.0);
    const Rgb& end = t < 0 ? blue : red;
    const double a = std::abs(t);
    c = Rgb{mid.r + (end.r - mid.r) * a, mid.g + (end.g - mid.g) * a, mid.b + (end.b - mid.b) * a};
  }
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", static_cast<unsigned>(std::lround(c.r)),
                static_cast<unsigned>(std::lround(c.g)), static_cast<unsigned>(std::lround(c.b)));
  return buf;
}

}  // namespace microgpt
