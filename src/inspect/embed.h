// Looking inside a trained model's embeddings: the token embedding wte (V, C) and the
// position embedding wpe (T, C), the two tables whose rows are added to make the vector
// the model receives (wte[token] + wpe[pos]).
//
//   cosine similarity and nearest neighbours of tokens, with a text report;
//   vowels against consonants: mean similarity within and across the two classes;
//   2-D PCA of both tables, drawn as one SVG (write_embedding_plot_svg);
//   the token-by-token similarity matrix as an SVG heatmap;
//   files for TensorFlow's Embedding Projector (projector.tensorflow.org);
//   show_report: what the model receives for a given text, and what it predicts next.
//
// Every function reads an EmbeddingView, which the caller fills from a model or a
// checkpoint (embedding_view_from_params cuts wte and wpe out of the flat parameter
// buffer by the one ParamLayout). Reports are returned as UTF-8 text for the caller to
// print. Files are written whole, through a temporary file and a rename.
//
// Errors: a query or text the user typed that the model cannot read (a character not in
// the vocabulary, a text longer than the context) is a usage error (exit code 2); an
// inconsistent view, a model callback that misbehaves or a file that cannot be written
// is a runtime Error (exit code 1). Nothing here prints or exits.
//
// Not here: loading checkpoints, running the model (show_report takes the model's
// predictions as a callback), and any plot of the attention or MLP weights.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/dataset.h"
#include "inspect/pca.h"
#include "model/config.h"

namespace microgpt {

// What the inspection reads. Token ids 0..vocab.size()-1 are vocab's characters (sorted
// by code point, distinct, as the tokenizer makes them); a model of documents has one
// more, BOS = vocab.size(), and a model of a continuous text none.
struct EmbeddingView {
  ModelConfig config;             // vocab_size is vocab.size() + 1 (with BOS) or vocab.size()
  std::u32string vocab;
  std::vector<double> wte;        // (vocab_size, n_embd), row-major
  std::vector<double> wpe;        // (block_size, n_embd), row-major

  int64_t vocab_size() const { return config.vocab_size; }
  int64_t n_embd() const { return config.n_embd; }
  bool has_bos() const { return config.vocab_size == static_cast<int64_t>(vocab.size()) + 1; }
  Token bos() const { return has_bos() ? static_cast<Token>(vocab.size()) : -1; }
  std::span<const double> token_row(Token t) const {
    return std::span<const double>(wte).subspan(static_cast<size_t>(t * config.n_embd), static_cast<size_t>(config.n_embd));
  }
  std::span<const double> position_row(int64_t pos) const {
    return std::span<const double>(wpe).subspan(static_cast<size_t>(pos * config.n_embd), static_cast<size_t>(config.n_embd));
  }
};

// wte and wpe copied out of a model's flat parameter buffer (laid out by
// ParamLayout(config)); the float overload serves the fast engine. Sets
// config.vocab_size from vocab: vocab.size() for a text model (whose config says so),
// vocab.size() + 1 (BOS) otherwise. Throws Error when params is too short for the layout
// or the view is inconsistent (check_embedding_view).
EmbeddingView embedding_view_from_params(const ModelConfig& config, std::u32string vocab, std::span<const float> params);
EmbeddingView embedding_view_from_params(const ModelConfig& config, std::u32string vocab, std::span<const double> params);

// Throws Error unless vocab_size == vocab.size() + 1 >= 2 or vocab_size == vocab.size()
// >= 1, n_embd and block_size >= 1,
// vocab is sorted and distinct, and wte / wpe have their sizes. Every function below
// calls it first.
void check_embedding_view(const EmbeddingView& view);

// How a token is shown in reports, plots and the projector's labels: the character as
// UTF-8; "<BOS>"; "<space>" for ' '; \t \n \r for those; U+XXXX for other white space,
// control characters, non-characters and the format characters that draw nothing
// (U+FEFF, the byte-order mark; U+200B, the zero-width space; ...): they are invisible,
// and several are not allowed in XML at all. Never contains a tab or a newline.
std::string token_label(const EmbeddingView& view, Token t);
std::string char_label(char32_t c);  // the same for a character of the vocabulary

// The id of a character, or -1 when it is not in the vocabulary.
Token token_id(const EmbeddingView& view, char32_t c);

// Parses a user's list of tokens such as "a,e,k" (UTF-8): items separated by commas,
// each one character, "<BOS>", or a name token_label gives a character ("<space>", "\n",
// "\t", "\r", "U+00A0": a text's line break is queried as \n, and a backslash as \).
// A comma can be queried too: "a,,,b" is a, ',' and b. Throws a usage error for an empty list or item, for two
// characters without a comma between them, and for a character outside the vocabulary, naming it:
// "'q' is not in the model's vocabulary".
std::vector<Token> parse_token_list(const EmbeddingView& view, std::string_view utf8_list);

// ---- Cosine similarity ---------------------------------------------------------------

// a . b / (|a| |b|); 0 when either vector is all zeros (it has no direction). Throws
// Error when the sizes differ.
double cosine_similarity(std::span<const double> a, std::span<const double> b);

// (V, V) row-major: cosine similarity of every pair of rows of wte.
std::vector<double> token_similarity_matrix(const EmbeddingView& view);

struct Neighbor {
  Token token = 0;
  double similarity = 0;
};

// Use as `top` for every other token.
inline constexpr int64_t kAllTokens = std::numeric_limits<int64_t>::max();

// The `top` tokens other than `token` whose wte rows have the highest cosine
// similarity to its row, highest first, equal similarities by token id. top larger than
// V - 1 gives all V - 1 others. Throws Error for a token outside 0..V-1 or top < 0.
std::vector<Neighbor> nearest_neighbors(const EmbeddingView& view, Token token, int64_t top);

// One line per query, in the order given:
//   a: e 0.812, i 0.774, o 0.701
// (labels as token_label, similarities with 3 decimals).
std::string neighbors_report(const EmbeddingView& view, std::span<const Token> queries, int64_t top = kAllTokens);
// The same for a typed list, parsed by parse_token_list (for --neighbors a,e,k).
std::string neighbors_report(const EmbeddingView& view, std::string_view utf8_list, int64_t top = kAllTokens);

// ---- Vowels and consonants ---------------------------------------------------------

enum class LetterClass { vowel, consonant, other };

// Vowels: a e i o u in either case and their accented forms in Latin-1 and Latin
// Extended-A (á à â ä ã å ā ă ą, é è ê ë ē ĕ ė ę ě, ..., ø, and the ligatures æ œ ĳ).
// Consonants: every other letter of ASCII, Latin-1 and Latin Extended-A (y, ç, ñ, ß, ð,
// þ, ł, ...). Other: everything else: digits, punctuation, white space, symbols such as
// × and ÷, the ordinal indicators ª º, µ, and letters of other scripts (they are not
// classified rather than guessed at).
LetterClass classify_char(char32_t c);
bool is_capital(char32_t c);  // A-Z and Latin-1's capitals (À..Þ but ×)
// BOS is other.
LetterClass classify_token(const EmbeddingView& view, Token t);
const char* letter_class_name(LetterClass c);  // "vowel", "consonant", "other"

// Mean cosine similarity over unordered pairs of distinct tokens within each class, and
// over all (vowel, consonant) pairs. A mean that has no pair is NaN.
struct ClassSimilarity {
  int64_t vowels = 0;
  int64_t consonants = 0;
  int64_t others = 0;
  double within_vowels = 0;
  double within_consonants = 0;
  double across = 0;
};
ClassSimilarity class_similarity(const EmbeddingView& view);

// One line, no newline at the end:
//   cosine similarity: within vowels 0.41 (5 tokens), within consonants 0.12 (21 tokens), across 0.03
// A class with fewer than two tokens reads "within vowels n/a (1 token; needs 2)", and
// "across n/a (no vowel-consonant pairs)" when either class is empty.
std::string class_similarity_line(const EmbeddingView& view);

// ---- PCA and plots ---------------------------------------------------------------------

Pca2 token_pca(const EmbeddingView& view);     // rows of wte
Pca2 position_pca(const EmbeddingView& view);  // rows of wpe

// One standalone SVG (1100 x 580): left, the tokens on the first two principal
// components of wte, each labelled with its character and coloured by letter class,
// with a legend and the share of variance on each axis; right, the positions
// 0..block_size-1 on the first two principal components of wpe, joined in order and
// labelled with their index.
// At most kMaxPlotTokens tokens are drawn (a usage error above: check_plot_fits); with
// more than kMaxPlotPositions positions the path takes every k-th one (and the last), so
// the file stays under a few megabytes whatever the model.
void write_embedding_plot_svg(const std::string& path, const EmbeddingView& view);
inline constexpr int64_t kMaxPlotTokens = 5000;
inline constexpr int64_t kMaxPlotPositions = 1000;
void check_plot_fits(const EmbeddingView& view);

// Token-by-token cosine similarity as a heatmap on a diverging scale from -1 (blue) to
// +1 (red), every row and column labelled, a colour legend; each cell carries its value
// as a tooltip while V <= 100. The size grows with V, which is at most
// kMaxHeatmapTokens (90,000 cells, about 6 MB; a usage error above: check_heatmap_fits).
void write_similarity_heatmap_svg(const std::string& path, const EmbeddingView& view);
inline constexpr int64_t kMaxHeatmapTokens = 300;
void check_heatmap_fits(const EmbeddingView& view);

// ---- Embedding Projector ---------------------------------------------------------------

struct ProjectorFiles {
  std::string vectors;  // PREFIX_vectors.tsv: V rows of n_embd tab-separated numbers
  std::string labels;   // PREFIX_labels.tsv: V labels (token_label), one a line
};

// Writes the two files projector.tensorflow.org loads ("Load" -> vectors, then
// metadata), with no header line. A number that is exactly a float (weights of the
// fast engine) is written as the shortest decimal that reads back as that float, any
// other as the shortest that reads back as the double. Returns the two paths.
ProjectorFiles export_projector_tsv(const std::string& prefix, const EmbeddingView& view);

// ---- What the model receives ------------------------------------------------------------

// The model, as show_report needs it: for a token sequence starting with BOS, the
// probability distribution of the next token after each position: tokens.size() rows
// of vocab_size probabilities.
using NextTokenProbs = std::function<std::vector<std::vector<double>>(const std::vector<Token>& tokens)>;

// What the model receives and predicts for [BOS] + text (a text model: the text alone):
// the tokens, and at each position the next token's distribution. The checks and
// errors of show_report below.
struct ShownInput {
  std::vector<Token> tokens;
  std::vector<std::vector<double>> probs;  // tokens.size() rows of vocab_size
};
ShownInput read_input(const EmbeddingView& view, std::string_view text, const NextTokenProbs& predict);
// The k most likely tokens of a distribution, highest first, ties by id (as show_report
// lists them).
std::vector<Token> most_likely(std::span<const double> probs, int64_t k);

// For [BOS] + text (UTF-8): at each position p, the token and its id, wte[token],
// wpe[p] and their sum (the vector the model receives), each on one line with 3
// decimals; then, at each position, the model's 5 most likely next tokens with their
// probabilities (highest first, ties by id). Usage errors: text not UTF-8, a character
// outside the vocabulary (named), or text longer than block_size - 1 characters (BOS
// takes position 0). Runtime Error when predict returns the wrong shape.
std::string show_report(const EmbeddingView& view, std::string_view text, const NextTokenProbs& predict);

}  // namespace microgpt
