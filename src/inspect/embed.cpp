#include "inspect/embed.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <utility>

#include "core/error.h"
#include "core/text.h"
#include "core/files.h"

namespace microgpt {

namespace {

std::string hex_code_point(char32_t c) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", static_cast<unsigned>(c));
  return buf;
}

std::string quoted_char(char32_t c) { return "'" + char_label(c) + "'"; }

// The characters char_label names in words or escapes, with their names (ASCII); the
// others it names U+XXXX, or shows as they are.
constexpr std::pair<char32_t, std::string_view> kNamedChars[] = {
    {U' ', "<space>"}, {U'\t', "\\t"}, {U'\n', "\\n"}, {U'\r', "\\r"}};

// The character named at s[i] by a label of char_label's longer than one character, when
// the item ends there (at a comma or the end): <space>, \t, \n, \r or U+XXXX (four to
// six hexadecimal digits); its length 0 when there is none.
struct NamedChar {
  char32_t c = 0;
  size_t length = 0;
};
NamedChar named_char(const std::u32string& s, size_t i) {
  const auto ends = [&](size_t at) { return at == s.size() || s[at] == U','; };
  for (const auto& [c, ascii] : kNamedChars) {
    const std::u32string name(ascii.begin(), ascii.end());
    if (s.compare(i, name.size(), name) == 0 && ends(i + name.size())) return {c, name.size()};
  }
  if (s.compare(i, 2, U"U+") != 0) return {};
  const auto hex = [](char32_t d) -> int {
    if (d >= U'0' && d <= U'9') return static_cast<int>(d - U'0');
    if (d >= U'A' && d <= U'F') return static_cast<int>(d - U'A') + 10;
    if (d >= U'a' && d <= U'f') return static_cast<int>(d - U'a') + 10;
    return -1;
  };
  size_t end = i + 2;
  char32_t c = 0;
  for (; end < s.size() && end - i < 8 && hex(s[end]) >= 0; end++) c = c * 16 + static_cast<char32_t>(hex(s[end]));
  if (end - i < 6 || !ends(end) || c > 0x10FFFF) return {};
  return {c, end - i};
}

Error not_in_vocabulary(char32_t c) { return usage_error(quoted_char(c) + " is not in the model's vocabulary"); }

void check_token(const EmbeddingView& view, Token t) {
  if (t < 0 || t >= view.vocab_size()) {
    throw Error("token " + std::to_string(t) + " is outside the vocabulary (0.." + std::to_string(view.vocab_size() - 1) + ")");
  }
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  std::string s = buf;
  // "-0.000" says nothing that "0.000" does not.
  if (s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
  return s;
}

template <typename T>
EmbeddingView view_from(const ModelConfig& config, std::u32string vocab, std::span<const T> params) {
  EmbeddingView view;
  view.config = config;
  // A text model's vocabulary is its characters; any other gets BOS after them.
  const auto chars = static_cast<int64_t>(vocab.size());
  view.config.vocab_size = config.vocab_size == chars ? chars : chars + 1;
  view.vocab = std::move(vocab);
  const ParamLayout layout(view.config);
  if (params.size() < static_cast<size_t>(layout.total())) {
    throw Error("the model's parameters hold " + std::to_string(params.size()) + " values, but its configuration needs " +
                std::to_string(layout.total()));
  }
  auto copy = [&](const ParamTensor& t, std::vector<double>& out) {
    const auto first = params.begin() + t.offset;
    out.assign(first, first + t.numel());
  };
  copy(layout.wte(), view.wte);
  copy(layout.wpe(), view.wpe);
  check_embedding_view(view);
  return view;
}

// Shortest decimal that reads back as x: as a float when x is one, else as a double.
std::string shortest(double x) {
  char buf[64];
  const auto f = static_cast<float>(x);
  const auto r = static_cast<double>(f) == x ? std::to_chars(buf, buf + sizeof buf, f) : std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, r.ptr);
}

// The indices of the k largest values, largest first, equal values by index.
std::vector<Token> top_k(std::span<const double> values, int64_t k, Token skip = -1) {
  std::vector<Token> ids;
  for (size_t i = 0; i < values.size(); i++) {
    if (static_cast<Token>(i) != skip) ids.push_back(static_cast<Token>(i));
  }
  // NaN sorts last so that it cannot break the ordering.
  auto key = [&](Token t) { return std::isnan(values[static_cast<size_t>(t)]) ? -INFINITY : values[static_cast<size_t>(t)]; };
  const auto n = static_cast<int64_t>(std::min<size_t>(ids.size(), static_cast<size_t>(std::max<int64_t>(k, 0))));
  std::partial_sort(ids.begin(), ids.begin() + n, ids.end(), [&](Token a, Token b) {
    const double ka = key(a), kb = key(b);
    return ka != kb ? ka > kb : a < b;
  });
  ids.resize(static_cast<size_t>(n));
  return ids;
}

}  // namespace

std::string char_label(char32_t c) {
  for (const auto& [named, name] : kNamedChars) {
    if (c == named) return std::string(name);
  }
  const bool control = c < 0x20 || (c >= 0x7F && c <= 0x9F);
  const bool noncharacter = (c >= 0xFDD0 && c <= 0xFDEF) || (c & 0xFFFE) == 0xFFFE;
  // Unicode's format characters that draw nothing: the soft hyphen, the zero-width
  // spaces and joiners, the direction marks and embeddings, the byte-order mark (which
  // Notepad writes at the start of a file, and which microgpt.py reads as a character),
  // the interlinear annotations and the tags
  const bool zero_width = c == 0xAD || c == 0x180E || (c >= 0x200B && c <= 0x200F) || (c >= 0x202A && c <= 0x202E) ||
                          (c >= 0x2060 && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB) ||
                          (c >= 0xE0000 && c <= 0xE007F);
  if (control || noncharacter || zero_width || is_python_space(c)) return hex_code_point(c);
  std::string out;
  append_utf8(out, c);
  return out;
}

EmbeddingView embedding_view_from_params(const ModelConfig& config, std::u32string vocab, std::span<const float> params) {
  return view_from(config, std::move(vocab), params);
}

EmbeddingView embedding_view_from_params(const ModelConfig& config, std::u32string vocab, std::span<const double> params) {
  return view_from(config, std::move(vocab), params);
}

void check_embedding_view(const EmbeddingView& view) {
  const ModelConfig& c = view.config;
  const auto chars = static_cast<int64_t>(view.vocab.size());
  if ((c.vocab_size != chars + 1 && c.vocab_size != chars) || c.vocab_size < 1 || chars < 1) {
    throw Error("embedding view: vocab_size " + std::to_string(c.vocab_size) + " does not match " +
                std::to_string(chars) + " characters (with BOS or without)");
  }
  if (c.n_embd < 1 || c.block_size < 1) {
    throw Error("embedding view: n_embd and block_size must be >= 1, got " + std::to_string(c.n_embd) + " and " +
                std::to_string(c.block_size));
  }
  for (size_t i = 1; i < view.vocab.size(); i++) {
    if (view.vocab[i - 1] >= view.vocab[i]) throw Error("embedding view: the vocabulary is not sorted and distinct");
  }
  if (view.wte.size() != static_cast<size_t>(c.vocab_size * c.n_embd) ||
      view.wpe.size() != static_cast<size_t>(c.block_size * c.n_embd)) {
    throw Error("embedding view: wte has " + std::to_string(view.wte.size()) + " values and wpe " +
                std::to_string(view.wpe.size()) + ", expected " + std::to_string(c.vocab_size * c.n_embd) + " and " +
                std::to_string(c.block_size * c.n_embd));
  }
}

std::string token_label(const EmbeddingView& view, Token t) {
  check_token(view, t);
  if (t == view.bos()) return "<BOS>";
  return char_label(view.vocab[static_cast<size_t>(t)]);
}

Token token_id(const EmbeddingView& view, char32_t c) {
  const auto it = std::lower_bound(view.vocab.begin(), view.vocab.end(), c);
  if (it == view.vocab.end() || *it != c) return -1;
  return static_cast<Token>(it - view.vocab.begin());
}

std::vector<Token> parse_token_list(const EmbeddingView& view, std::string_view utf8_list) {
  check_embedding_view(view);
  const auto decoded = decode_utf8(utf8_list);
  if (!decoded) throw usage_error("the list of characters is not valid UTF-8");
  const std::u32string& s = *decoded;
  if (s.empty()) throw usage_error("the list of characters is empty (expected e.g. a,e,k)");
  std::vector<Token> out;
  size_t i = 0;
  while (true) {
    if (i == s.size()) throw usage_error("the list of characters '" + std::string(utf8_list) + "' ends with an empty item");
    Token t;
    if (s.compare(i, 5, U"<BOS>") == 0 && view.has_bos()) {
      t = view.bos();
      i += 5;
    } else if (const auto [c, length] = named_char(s, i); length > 0) {
      t = token_id(view, c);
      if (t < 0) throw not_in_vocabulary(c);
      i += length;
    } else {
      t = token_id(view, s[i]);
      if (t < 0) throw not_in_vocabulary(s[i]);
      i += 1;
    }
    out.push_back(t);
    if (i == s.size()) break;
    if (s[i] != U',') {
      throw usage_error("in the list of characters '" + std::string(utf8_list) + "', expected ',' after " +
                        token_label(view, t) + " but found " + quoted_char(s[i]) +
                        " (items are single characters, <BOS>, or names as the reports print them: <space>, \\n, "
                        "U+00A0; separated by commas)");
    }
    i++;
  }
  return out;
}

double cosine_similarity(std::span<const double> a, std::span<const double> b) {
  if (a.size() != b.size()) {
    throw Error("cosine_similarity: vectors of " + std::to_string(a.size()) + " and " + std::to_string(b.size()) + " values");
  }
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  if (na == 0 || nb == 0) return 0;
  // Rounding can push |cos| a hair past 1; the clamp keeps the reports honest.
  return std::clamp(dot / (std::sqrt(na) * std::sqrt(nb)), -1.0, 1.0);
}

std::vector<double> token_similarity_matrix(const EmbeddingView& view) {
  check_embedding_view(view);
  const auto V = static_cast<size_t>(view.vocab_size());
  std::vector<double> sim(V * V);
  for (size_t i = 0; i < V; i++) {
    for (size_t j = i; j < V; j++) {
      sim[i * V + j] = sim[j * V + i] =
          cosine_similarity(view.token_row(static_cast<Token>(i)), view.token_row(static_cast<Token>(j)));
    }
  }
  return sim;
}

std::vector<Neighbor> nearest_neighbors(const EmbeddingView& view, Token token, int64_t top) {
  check_embedding_view(view);
  check_token(view, token);
  if (top < 0) throw Error("nearest_neighbors: top must be >= 0, got " + std::to_string(top));
  std::vector<double> sim(static_cast<size_t>(view.vocab_size()));
  for (Token t = 0; t < view.vocab_size(); t++) sim[static_cast<size_t>(t)] = cosine_similarity(view.token_row(token), view.token_row(t));
  std::vector<Neighbor> out;
  for (Token t : top_k(sim, top, token)) out.push_back(Neighbor{t, sim[static_cast<size_t>(t)]});
  return out;
}

std::string neighbors_report(const EmbeddingView& view, std::span<const Token> queries, int64_t top) {
  std::string out;
  for (Token q : queries) {
    out += token_label(view, q) + ":";
    const auto neighbors = nearest_neighbors(view, q, top);
    for (size_t i = 0; i < neighbors.size(); i++) {
      out += i == 0 ? " " : ", ";
      out += token_label(view, neighbors[i].token) + " " + fixed(neighbors[i].similarity, 3);
    }
    out += "\n";
  }
  return out;
}

std::string neighbors_report(const EmbeddingView& view, std::string_view utf8_list, int64_t top) {
  const std::vector<Token> queries = parse_token_list(view, utf8_list);
  return neighbors_report(view, std::span<const Token>(queries), top);
}

LetterClass classify_char(char32_t c) {
  if (c < 0x80) {
    const char32_t lower = c | 0x20;
    if (lower < U'a' || lower > U'z') return LetterClass::other;
    return lower == U'a' || lower == U'e' || lower == U'i' || lower == U'o' || lower == U'u' ? LetterClass::vowel
                                                                                               : LetterClass::consonant;
  }
  if (c >= 0xC0 && c <= 0xFF) {
    if (c == 0xD7 || c == 0xF7) return LetterClass::other;  // × and ÷
    const char32_t lower = c | 0x20;  // Latin-1 keeps case 32 apart, as ASCII does
    // à..æ, è..ï, ò..ö, ø..ü (and their capitals): the rest of the block's letters are
    // ç, ð, ñ, ý, þ, ß and ÿ.
    const bool vowel = (lower >= 0xE0 && lower <= 0xE6) || (lower >= 0xE8 && lower <= 0xEF) ||
                       (lower >= 0xF2 && lower <= 0xF6) || (lower >= 0xF8 && lower <= 0xFC);
    return vowel ? LetterClass::vowel : LetterClass::consonant;
  }
  if (c >= 0x100 && c <= 0x17F) {
    // Latin Extended-A is all letters, in runs by base letter: a (0100-0105), e
    // (0112-011B), i with ĳ (0128-0133), o with œ (014C-0153), u (0168-0173).
    const bool vowel = (c <= 0x105) || (c >= 0x112 && c <= 0x11B) || (c >= 0x128 && c <= 0x133) ||
                       (c >= 0x14C && c <= 0x153) || (c >= 0x168 && c <= 0x173);
    return vowel ? LetterClass::vowel : LetterClass::consonant;
  }
  return LetterClass::other;
}

bool is_capital(char32_t c) {
  return (c >= U'A' && c <= U'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7);  // ASCII's and Latin-1's
}

LetterClass classify_token(const EmbeddingView& view, Token t) {
  check_token(view, t);
  return t == view.bos() ? LetterClass::other : classify_char(view.vocab[static_cast<size_t>(t)]);
}

const char* letter_class_name(LetterClass c) {
  switch (c) {
    case LetterClass::vowel: return "vowel";
    case LetterClass::consonant: return "consonant";
    case LetterClass::other: return "other";
  }
  return "other";
}

ClassSimilarity class_similarity(const EmbeddingView& view) {
  check_embedding_view(view);
  std::vector<Token> vowels, consonants;
  ClassSimilarity out;
  for (Token t = 0; t < view.vocab_size(); t++) {
    switch (classify_token(view, t)) {
      case LetterClass::vowel: vowels.push_back(t); break;
      case LetterClass::consonant: consonants.push_back(t); break;
      case LetterClass::other: out.others++; break;
    }
  }
  out.vowels = static_cast<int64_t>(vowels.size());
  out.consonants = static_cast<int64_t>(consonants.size());
  auto sim = [&](Token a, Token b) { return cosine_similarity(view.token_row(a), view.token_row(b)); };
  auto within = [&](const std::vector<Token>& ids) {
    double sum = 0;
    int64_t n = 0;
    for (size_t i = 0; i < ids.size(); i++) {
      for (size_t j = i + 1; j < ids.size(); j++, n++) sum += sim(ids[i], ids[j]);
    }
    return n > 0 ? sum / static_cast<double>(n) : NAN;
  };
  out.within_vowels = within(vowels);
  out.within_consonants = within(consonants);
  double sum = 0;
  for (Token a : vowels) {
    for (Token b : consonants) sum += sim(a, b);
  }
  const size_t pairs = vowels.size() * consonants.size();
  out.across = pairs > 0 ? sum / static_cast<double>(pairs) : NAN;
  return out;
}

std::string class_similarity_line(const EmbeddingView& view) {
  const ClassSimilarity s = class_similarity(view);
  auto tokens = [](int64_t n) { return std::to_string(n) + (n == 1 ? " token" : " tokens"); };
  auto within = [&](const char* name, double mean, int64_t n) {
    std::string out = std::string("within ") + name + " ";
    return out + (n < 2 ? "n/a (" + tokens(n) + "; needs 2)" : fixed(mean, 2) + " (" + tokens(n) + ")");
  };
  std::string out = "cosine similarity: " + within("vowels", s.within_vowels, s.vowels) + ", " +
                    within("consonants", s.within_consonants, s.consonants) + ", across ";
  out += s.vowels > 0 && s.consonants > 0 ? fixed(s.across, 2) : "n/a (no vowel-consonant pairs)";
  return out;
}

Pca2 token_pca(const EmbeddingView& view) {
  check_embedding_view(view);
  return pca_2d(view.wte, view.vocab_size(), view.n_embd());
}

Pca2 position_pca(const EmbeddingView& view) {
  check_embedding_view(view);
  return pca_2d(view.wpe, view.config.block_size, view.n_embd());
}

ProjectorFiles export_projector_tsv(const std::string& prefix, const EmbeddingView& view) {
  check_embedding_view(view);
  ProjectorFiles files{prefix + "_vectors.tsv", prefix + "_labels.tsv"};
  std::string vectors, labels;
  for (Token t = 0; t < view.vocab_size(); t++) {
    const auto row = view.token_row(t);
    for (size_t i = 0; i < row.size(); i++) {
      if (i > 0) vectors += '\t';
      vectors += shortest(row[i]);
    }
    vectors += '\n';
    labels += token_label(view, t) + "\n";
  }
  write_file_atomic(files.vectors, vectors);
  write_file_atomic(files.labels, labels);
  return files;
}

ShownInput read_input(const EmbeddingView& view, std::string_view text, const NextTokenProbs& predict) {
  check_embedding_view(view);
  const auto decoded = decode_utf8(text);
  if (!decoded) throw usage_error("the text to show is not valid UTF-8");
  // A model of documents reads <BOS> first; a model of a text reads the text alone.
  const int64_t block = view.config.block_size;
  const int64_t room = view.has_bos() ? block - 1 : block;
  if (static_cast<int64_t>(decoded->size()) > room) {
    throw usage_error("the text to show has " + std::to_string(decoded->size()) + " characters; " +
                      (view.has_bos() ? "with <BOS> at position 0 the model reads at most block_size - 1 = "
                                      : "the model reads at most block_size = ") +
                      std::to_string(room));
  }
  if (!view.has_bos() && decoded->empty()) throw usage_error("the text to show is empty");
  ShownInput in;
  if (view.has_bos()) in.tokens.push_back(view.bos());
  for (char32_t c : *decoded) {
    const Token t = token_id(view, c);
    if (t < 0) throw not_in_vocabulary(c);
    in.tokens.push_back(t);
  }
  in.probs = predict(in.tokens);
  if (in.probs.size() != in.tokens.size()) {
    throw Error("the model returned " + std::to_string(in.probs.size()) + " distributions for " +
                std::to_string(in.tokens.size()) + " positions");
  }
  for (size_t p = 0; p < in.probs.size(); p++) {
    if (static_cast<int64_t>(in.probs[p].size()) != view.vocab_size()) {
      throw Error("the model returned " + std::to_string(in.probs[p].size()) + " probabilities at position " +
                  std::to_string(p) + ", expected vocab_size " + std::to_string(view.vocab_size()));
    }
  }
  return in;
}

std::vector<Token> most_likely(std::span<const double> probs, int64_t k) { return top_k(probs, k); }

std::string show_report(const EmbeddingView& view, std::string_view text, const NextTokenProbs& predict) {
  const ShownInput in = read_input(view, text, predict);
  const std::vector<Token>& tokens = in.tokens;

  auto vector_line = [](std::string name, std::span<const double> v) {
    name.resize(std::max<size_t>(name.size(), 10), ' ');
    std::string line = "    " + name + " =";
    char buf[64];
    for (double x : v) {
      std::snprintf(buf, sizeof buf, " %7s", fixed(x, 3).c_str());
      line += buf;
    }
    return line + "\n";
  };
  std::string out = "what the model receives at each position: wte[token] + wpe[position]\n";
  for (size_t p = 0; p < tokens.size(); p++) {
    const Token t = tokens[p];
    out += "pos " + std::to_string(p) + "  " + token_label(view, t) + "  (token " + std::to_string(t) + ")\n";
    const auto te = view.token_row(t);
    const auto pe = view.position_row(static_cast<int64_t>(p));
    std::vector<double> sum(te.size());
    for (size_t i = 0; i < sum.size(); i++) sum[i] = te[i] + pe[i];
    out += vector_line("wte[" + std::to_string(t) + "]", te);
    out += vector_line("wpe[" + std::to_string(p) + "]", pe);
    out += vector_line("sum", sum);
  }

  const std::vector<std::vector<double>>& probs = in.probs;
  out += view.has_bos() ? "top 5 predictions for the next character (<BOS> = end of the text):\n"
                        : "top 5 predictions for the next character:\n";
  std::string context;
  for (size_t p = 0; p < tokens.size(); p++) {
    context += token_label(view, tokens[p]);
    out += "pos " + std::to_string(p) + " after " + context + ":";
    const auto best = most_likely(probs[p], 5);
    for (size_t i = 0; i < best.size(); i++) {
      out += i == 0 ? " " : ", ";
      out += token_label(view, best[i]) + " " + fixed(probs[p][static_cast<size_t>(best[i])], 3);
    }
    out += "\n";
  }
  return out;
}

}  // namespace microgpt
