// The two SVG drawings of embed.h: the PCA panels (tokens and positions) and the
// similarity heatmap. Layout constants are in pixels.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "inspect/embed.h"
#include "inspect/svg.h"

namespace microgpt {

namespace {

const char* class_color(LetterClass c) {
  switch (c) {
    case LetterClass::vowel: return "#d62728";
    case LetterClass::consonant: return "#1f77b4";
    case LetterClass::other: return "#7f7f7f";
  }
  return "#7f7f7f";
}

std::string percent_axis(int k, double share) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "PC%d (%.1f%% of variance)", k + 1, 100.0 * share);
  return buf;
}

// Axes of a PCA scatter: each from its own range (the second component usually spans
// much less than the first; equal scales would squash it into a line).
void pca_axes(const Pca2& pca, PlotAxis& x, PlotAxis& y) {
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (int64_t r = 0; r < pca.rows; r++) {
    x0 = std::min(x0, pca.coords[static_cast<size_t>(2 * r)]);
    x1 = std::max(x1, pca.coords[static_cast<size_t>(2 * r)]);
    y0 = std::min(y0, pca.coords[static_cast<size_t>(2 * r + 1)]);
    y1 = std::max(y1, pca.coords[static_cast<size_t>(2 * r + 1)]);
  }
  x = make_axis(x0, x1, 6, 0.06);
  y = make_axis(y0, y1, 6, 0.06);
}

}  // namespace

void check_plot_fits(const EmbeddingView& view) {
  if (view.vocab_size() > kMaxPlotTokens) {
    throw usage_error("--plot draws at most " + std::to_string(kMaxPlotTokens) + " tokens and this model has " +
                      std::to_string(view.vocab_size()) + "; --neighbors or --export show a vocabulary that large");
  }
}

void check_heatmap_fits(const EmbeddingView& view) {
  if (view.vocab_size() > kMaxHeatmapTokens) {
    throw usage_error("--heatmap draws at most " + std::to_string(kMaxHeatmapTokens) + " tokens (a square of " +
                      std::to_string(kMaxHeatmapTokens * kMaxHeatmapTokens) + " cells) and this model has " +
                      std::to_string(view.vocab_size()) + "; --neighbors or --export show a vocabulary that large");
  }
}

void write_embedding_plot_svg(const std::string& path, const EmbeddingView& view) {
  check_embedding_view(view);
  check_plot_fits(view);
  const Pca2 tok = token_pca(view);
  const Pca2 pos = position_pca(view);
  const double width = 1100, height = 580;
  const std::string title = "Learned embeddings: vocab_size " + std::to_string(view.vocab_size()) + ", n_embd " +
                            std::to_string(view.n_embd()) + ", block_size " + std::to_string(view.config.block_size);
  std::string out;
  svg_begin(out, width, height, title);
  svg_text(out, width / 2, 30, title, "text-anchor=\"middle\" font-size=\"18\"");

  // Left: tokens.
  const PlotArea left{90, 80, 430, 390};
  PlotAxis x, y;
  pca_axes(tok, x, y);
  svg_text(out, left.left + left.width / 2, 66, "token embeddings (rows of wte), first two principal components",
           "text-anchor=\"middle\" font-size=\"13\"");
  svg_axes(out, left, x, y, percent_axis(0, tok.variance_share[0]), percent_axis(1, tok.variance_share[1]));
  int64_t counts[3] = {0, 0, 0}, capitals = 0;
  out += "<g font-size=\"12\">\n";
  for (Token t = 0; t < view.vocab_size(); t++) {
    const LetterClass c = classify_token(view, t);
    counts[static_cast<int>(c)]++;
    const double px = left.x(x, tok.coords[static_cast<size_t>(2 * t)]);
    const double py = left.y(y, tok.coords[static_cast<size_t>(2 * t + 1)]);
    // capitals as rings, everything else as dots
    const bool capital = t != view.bos() && is_capital(view.vocab[static_cast<size_t>(t)]);
    if (capital) capitals++;
    out += "<circle cx=\"" + svg_num(px) + "\" cy=\"" + svg_num(py) + "\" r=\"3.5\" " +
           (capital ? std::string("fill=\"none\" stroke=\"") : std::string("fill=\"")) + class_color(c) + "\"/>\n";
    svg_text(out, px + 5, py - 5, token_label(view, t), std::string("fill=\"") + class_color(c) + "\"");
  }
  out += "</g>\n";
  double lx = left.left;
  for (LetterClass c : {LetterClass::vowel, LetterClass::consonant, LetterClass::other}) {
    const std::string text = std::string(letter_class_name(c)) + " (" + std::to_string(counts[static_cast<int>(c)]) + ")";
    out += "<circle cx=\"" + svg_num(lx + 5) + "\" cy=\"546\" r=\"4\" fill=\"" + class_color(c) + "\"/>\n";
    svg_text(out, lx + 14, 550, text);
    lx += 30 + 7.5 * static_cast<double>(text.size());
  }
  if (capitals > 0) {
    const std::string text = "ring: capital (" + std::to_string(capitals) + ")";
    out += "<circle cx=\"" + svg_num(lx + 5) + "\" cy=\"546\" r=\"4\" fill=\"none\" stroke=\"#333\"/>\n";
    svg_text(out, lx + 14, 550, text);
  }

  // Right: positions, joined in order so the drift from one position to the next shows.
  const PlotArea right{640, 80, 430, 390};
  pca_axes(pos, x, y);
  svg_text(out, right.left + right.width / 2, 66, "position embeddings (rows of wpe), in order 0, 1, 2, ...",
           "text-anchor=\"middle\" font-size=\"13\"");
  svg_axes(out, right, x, y, percent_axis(0, pos.variance_share[0]), percent_axis(1, pos.variance_share[1]));
  // Every position, or every stride-th one and the last of a long context.
  const int64_t stride = (pos.rows + kMaxPlotPositions - 1) / kMaxPlotPositions;
  std::vector<int64_t> drawn;
  for (int64_t p = 0; p < pos.rows; p += stride) drawn.push_back(p);
  if (drawn.back() != pos.rows - 1) drawn.push_back(pos.rows - 1);
  std::string d;
  for (int64_t p : drawn) {
    d += (p == 0 ? "M" : " L") + svg_num(right.x(x, pos.coords[static_cast<size_t>(2 * p)])) + " " +
         svg_num(right.y(y, pos.coords[static_cast<size_t>(2 * p + 1)]));
  }
  out += "<path d=\"" + d + "\" fill=\"none\" stroke=\"#9e9ac8\" stroke-width=\"1.5\"/>\n";
  out += "<g font-size=\"11\" fill=\"#54278f\">\n";
  for (int64_t p : drawn) {
    const double px = right.x(x, pos.coords[static_cast<size_t>(2 * p)]);
    const double py = right.y(y, pos.coords[static_cast<size_t>(2 * p + 1)]);
    out += "<circle cx=\"" + svg_num(px) + "\" cy=\"" + svg_num(py) + "\" r=\"3\"/>\n";
    svg_text(out, px + 5, py - 5, std::to_string(p));
  }
  out += "</g>\n";
  svg_text(out, right.left, 550,
           stride == 1 ? std::string("each point is one position; the line joins consecutive positions")
                       : "one position in " + std::to_string(stride) + ", and the last, joined in order",
           "fill=\"#555555\"");
  svg_end(out);
  write_file_atomic(path, out);
}

void write_similarity_heatmap_svg(const std::string& path, const EmbeddingView& view) {
  check_embedding_view(view);
  check_heatmap_fits(view);
  const std::vector<double> sim = token_similarity_matrix(view);
  const int64_t V = view.vocab_size();
  // Cells shrink as the vocabulary grows, so a 27-token model and a 300-token one both
  // fit a screen; labels shrink with them.
  const double cell = std::clamp(std::floor(700.0 / static_cast<double>(V)), 6.0, 24.0);
  const double font = std::clamp(cell * 0.7, 5.0, 12.0);
  const double left = 70, top = 110;
  const double grid = cell * static_cast<double>(V);
  const double bar_h = std::max(grid, 200.0);
  const double width = left + grid + 110, height = top + std::max(grid, bar_h) + 30;
  const std::string title = "Cosine similarity of token embeddings (rows of wte)";
  std::string out;
  svg_begin(out, std::max(width, 520.0), height, title);
  svg_text(out, 20, 28, title, "font-size=\"16\"");
  svg_text(out, 20, 48, "row token vs column token; -1 opposite, 0 unrelated, +1 same direction", "fill=\"#555555\"");

  out += "<g font-size=\"" + svg_num(font) + "\">\n";
  for (Token t = 0; t < V; t++) {
    const double middle = cell * (static_cast<double>(t) + 0.5);  // of row t, and of column t
    // A baseline 0.35 em below the middle centres the glyphs on it.
    svg_text(out, left - 4, top + middle + font * 0.35, token_label(view, t), "text-anchor=\"end\"");
    const double cx = left + middle + font * 0.35, cy = top - 4;
    svg_text(out, cx, cy, token_label(view, t),
             "transform=\"rotate(-90 " + svg_num(cx) + " " + svg_num(cy) + ")\"");
  }
  out += "</g>\n";

  const bool tooltips = V <= 100;  // a title per cell makes big heatmaps heavy
  out += "<g stroke=\"none\">\n";
  for (Token i = 0; i < V; i++) {
    for (Token j = 0; j < V; j++) {
      const double v = sim[static_cast<size_t>(i * V + j)];
      out += "<rect x=\"" + svg_num(left + cell * j) + "\" y=\"" + svg_num(top + cell * i) + "\" width=\"" +
             svg_num(cell) + "\" height=\"" + svg_num(cell) + "\" fill=\"" + diverging_color(v) + "\"";
      if (tooltips) {
        char buf[32];
        std::snprintf(buf, sizeof buf, " %.3f", v);
        out += "><title>" + xml_escape(token_label(view, i) + " / " + token_label(view, j) + buf) + "</title></rect>\n";
      } else {
        out += "/>\n";
      }
    }
  }
  out += "</g>\n";
  out += "<rect x=\"" + svg_num(left) + "\" y=\"" + svg_num(top) + "\" width=\"" + svg_num(grid) + "\" height=\"" +
         svg_num(grid) + "\" fill=\"none\" stroke=\"#333333\"/>\n";

  // The legend: a gradient bar from +1 (top) to -1 (bottom) with ticks.
  const double bx = left + grid + 30;
  out += "<defs><linearGradient id=\"diverging\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">";
  for (int k = 0; k <= 8; k++) {
    const double v = -1.0 + 0.25 * k;
    out += "<stop offset=\"" + svg_num(k / 8.0) + "\" stop-color=\"" + diverging_color(v) + "\"/>";
  }
  out += "</linearGradient></defs>\n";
  out += "<rect x=\"" + svg_num(bx) + "\" y=\"" + svg_num(top) + "\" width=\"16\" height=\"" + svg_num(bar_h) +
         "\" fill=\"url(#diverging)\" stroke=\"#333333\"/>\n";
  out += "<g font-size=\"11\">\n";
  for (double v : {1.0, 0.5, 0.0, -0.5, -1.0}) {
    const double py = top + (1.0 - v) / 2.0 * bar_h;
    out += "<line x1=\"" + svg_num(bx + 16) + "\" y1=\"" + svg_num(py) + "\" x2=\"" + svg_num(bx + 21) + "\" y2=\"" +
           svg_num(py) + "\" stroke=\"#333333\"/>\n";
    svg_text(out, bx + 24, py + 4, tick_label(v, 0.5));
  }
  out += "</g>\n";
  svg_end(out);
  write_file_atomic(path, out);
}

}  // namespace microgpt
