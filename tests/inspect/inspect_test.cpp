// Tests of src/inspect: similarity and neighbours, letter classes, PCA, the SVG and TSV
// files, show_report and the loss plot. SVG files are checked with a small strict XML
// well-formedness checker written here (nothing to install, and it never skips).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/text.h"
#include "inspect/embed.h"
#include "inspect/plots.h"
#include "inspect/svg.h"
#include "test_support.h"
#include "xml_check.h"

namespace microgpt {
namespace {

using testing::check_xml;
using testing::read_file;
using testing::XmlNode;
using testing::XmlResult;
using testing::TempDir;


int count_of(const std::vector<std::string>& v, const std::string& x) {
  return static_cast<int>(std::count(v.begin(), v.end(), x));
}

size_t count_substr(const std::string& s, const std::string& sub) {
  size_t n = 0;
  for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + 1)) n++;
  return n;
}

// Every SVG: well formed, the SVG namespace as its only web address, no NaN or inf.
void expect_standalone_svg(const std::string& bytes, const XmlResult& xml) {
  EXPECT_EQ(xml.error, "");
  EXPECT_EQ(xml.elements.count("svg"), 1u);
  EXPECT_EQ(count_substr(bytes, "http"), 1u);
  EXPECT_EQ(count_substr(bytes, "xmlns=\"http://www.w3.org/2000/svg\""), 1u);
  // Numbers live in attributes ("consonant" in a text would match "nan").
  for (const std::string& a : xml.attrs) {
    EXPECT_EQ(a.find("nan"), std::string::npos) << a;
    EXPECT_EQ(a.find("inf"), std::string::npos) << a;
  }
  EXPECT_EQ(bytes.find("url(http"), std::string::npos);
}

TEST(XmlChecker, AcceptsWellFormedAndRejectsTheUsualMistakes) {
  const XmlResult ok = check_xml("<?xml version=\"1.0\"?>\n<a x=\"1 &amp; 2\" y='&lt;'><b>&#233;&#x41;&quot;</b><c/></a>\n");
  EXPECT_EQ(ok.error, "");
  EXPECT_EQ(ok.texts, std::vector<std::string>{"\xC3\xA9" "A\""});
  EXPECT_EQ(ok.attrs, (std::vector<std::string>{"1 & 2", "<"}));
  const char* bad[] = {
      "<a><b></a></b>",         // crossed
      "<a>",                    // unclosed
      "<a x=1/>",               // unquoted
      "<a x=\"1\" x=\"2\"/>",   // duplicate attribute
      "<a>&nbsp;</a>",          // not an XML entity
      "<a>a & b</a>",           // raw ampersand
      "<a>1 < 2</a>",           // raw '<'
      "<a x=\"<\"/>",           // '<' in an attribute
      "<a/><b/>",               // two roots
      "<a>&#1;</a>",            // forbidden character
      "<a>\x01</a>",            // forbidden character, raw
      "<a>\xC3</a>",            // not UTF-8
      "<a x=\"1\"y=\"2\"/>",    // attributes run together
  };
  for (const char* b : bad) EXPECT_NE(check_xml(b).error, "") << b;
}

// ---- Views made by hand ---------------------------------------------------------------

EmbeddingView make_view(std::u32string vocab, int64_t C, std::vector<double> wte, int64_t T, std::vector<double> wpe) {
  EmbeddingView v;
  v.vocab = std::move(vocab);
  v.config.vocab_size = static_cast<int64_t>(v.vocab.size()) + 1;
  v.config.n_embd = C;
  v.config.n_head = 1;
  v.config.block_size = T;
  v.wte = std::move(wte);
  v.wpe = std::move(wpe);
  check_embedding_view(v);
  return v;
}

// Deterministic pseudo-random numbers in (-1, 1) for bigger views.
std::vector<double> numbers(size_t n, uint64_t seed) {
  std::vector<double> out(n);
  for (double& x : out) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<double>(seed >> 11) / static_cast<double>(1ull << 53) * 2 - 1;
  }
  return out;
}

EmbeddingView random_view(std::u32string vocab, int64_t C, int64_t T, uint64_t seed = 1) {
  const auto V = vocab.size() + 1;
  return make_view(std::move(vocab), C, numbers(V * static_cast<size_t>(C), seed), T,
                   numbers(static_cast<size_t>(T * C), seed + 1));
}

// a b c d e and BOS in 2-D, chosen so the similarities to a are known:
// b parallel (1), d at 45 degrees (0.7071), c and e orthogonal (0, a tie), BOS opposite.
EmbeddingView compass_view() {
  return make_view(U"abcde", 2, {1, 0, /*b*/ 2, 0, /*c*/ 0, 1, /*d*/ 1, 1, /*e*/ 0, -3, /*BOS*/ -1, 0}, 2, {0, 0, 0, 0});
}

std::string error_of(const std::function<void()>& f, Error::Kind* kind = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (kind) *kind = e.kind();
    return e.what();
  }
  return "(no error)";
}

// ---- Similarity and neighbours --------------------------------------------------------

TEST(Similarity, ParallelOrthogonalOppositeAndZero) {
  const std::vector<double> a{1, 2, 0}, twice{2, 4, 0}, ortho{-2, 1, 5}, opposite{-3, -6, 0}, zero{0, 0, 0};
  EXPECT_NEAR(cosine_similarity(a, twice), 1.0, 1e-15);
  EXPECT_NEAR(cosine_similarity(a, ortho), 0.0, 1e-15);
  EXPECT_NEAR(cosine_similarity(a, opposite), -1.0, 1e-15);
  EXPECT_EQ(cosine_similarity(a, zero), 0.0);
  EXPECT_NEAR(cosine_similarity(std::vector<double>{1, 0}, std::vector<double>{1, 1}), std::sqrt(0.5), 1e-15);
  EXPECT_THROW(cosine_similarity(a, std::vector<double>{1, 2}), Error);
}

TEST(Similarity, MatrixIsSymmetricWithOnesOnTheDiagonal) {
  const EmbeddingView v = compass_view();
  const std::vector<double> m = token_similarity_matrix(v);
  ASSERT_EQ(m.size(), 36u);
  for (int i = 0; i < 6; i++) {
    EXPECT_NEAR(m[i * 6 + i], 1.0, 1e-15);
    for (int j = 0; j < 6; j++) EXPECT_EQ(m[i * 6 + j], m[j * 6 + i]);
  }
  EXPECT_NEAR(m[0 * 6 + 3], std::sqrt(0.5), 1e-15);  // a, d
  EXPECT_NEAR(m[0 * 6 + 5], -1.0, 1e-15);            // a, BOS
}

TEST(Neighbors, SortedBySimilarityThenTokenId) {
  const EmbeddingView v = compass_view();
  const auto n = nearest_neighbors(v, 0, kAllTokens);
  ASSERT_EQ(n.size(), 5u);
  const Token order[] = {1, 3, 2, 4, 5};  // b 1, d 0.707, c 0 and e 0 (tie: lower id first), BOS -1
  const double sims[] = {1, std::sqrt(0.5), 0, 0, -1};
  for (size_t i = 0; i < 5; i++) {
    EXPECT_EQ(n[i].token, order[i]) << i;
    EXPECT_NEAR(n[i].similarity, sims[i], 1e-15) << i;
  }
  // The same tie seen from the other side: neighbours of BOS (-1, 0) are c and e at 0
  // (c first), after nothing positive... d is at -0.707, b and a at -1 (a first).
  const auto nb = nearest_neighbors(v, 5, kAllTokens);
  EXPECT_EQ(nb[0].token, 2);
  EXPECT_EQ(nb[1].token, 4);
  EXPECT_EQ(nb[2].token, 3);
  EXPECT_EQ(nb[3].token, 0);
  EXPECT_EQ(nb[4].token, 1);
  EXPECT_EQ(nearest_neighbors(v, 0, 2).size(), 2u);
  EXPECT_EQ(nearest_neighbors(v, 0, 2)[1].token, 3);
  EXPECT_TRUE(nearest_neighbors(v, 0, 0).empty());
  EXPECT_THROW(nearest_neighbors(v, 6, 1), Error);
  EXPECT_THROW(nearest_neighbors(v, -1, 1), Error);
  EXPECT_THROW(nearest_neighbors(v, 0, -1), Error);
}

TEST(Neighbors, ReportLinesAndQueries) {
  const EmbeddingView v = compass_view();
  EXPECT_EQ(neighbors_report(v, "a", 2), "a: b 1.000, d 0.707\n");
  EXPECT_EQ(neighbors_report(v, "a,<BOS>", 3), "a: b 1.000, d 0.707, c 0.000\n<BOS>: c 0.000, e 0.000, d -0.707\n");
  Error::Kind kind = Error::Kind::runtime;
  EXPECT_EQ(error_of([&] { neighbors_report(v, "a,q", 2); }, &kind), "'q' is not in the model's vocabulary");
  EXPECT_EQ(kind, Error::Kind::usage);
  EXPECT_NE(error_of([&] { parse_token_list(v, ""); }).find("empty"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_token_list(v, "a,"); }).find("empty item"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_token_list(v, "ab"); }).find("expected ','"), std::string::npos);
  EXPECT_EQ(error_of([&] { parse_token_list(v, "<space>"); }), "'<space>' is not in the model's vocabulary");
  EXPECT_EQ(error_of([&] { parse_token_list(v, "\t"); }), "'\\t' is not in the model's vocabulary");
  EXPECT_EQ(error_of([&] { parse_token_list(v, "\xC3\xA9"); }), "'\xC3\xA9' is not in the model's vocabulary");
}

TEST(Neighbors, ReportOrderIsExact) {
  // e = (0, -3): c is opposite (-1); a, b and BOS are orthogonal (0, by id); d is -0.707.
  const EmbeddingView v = compass_view();
  EXPECT_EQ(neighbors_report(v, "e"), "e: a 0.000, b 0.000, <BOS> 0.000, d -0.707, c -1.000\n");
}

TEST(Neighbors, CommasSpacesAndBosCanBeQueried) {
  const EmbeddingView v = random_view(U" ,ab", 3, 2);
  EXPECT_EQ(parse_token_list(v, "a,,,b"), (std::vector<Token>{2, 1, 3}));
  EXPECT_EQ(parse_token_list(v, ","), (std::vector<Token>{1}));
  EXPECT_EQ(parse_token_list(v, "<space>, ,<BOS>"), (std::vector<Token>{0, 0, 4}));
  EXPECT_EQ(token_label(v, 0), "<space>");
  EXPECT_EQ(token_label(v, 4), "<BOS>");
}

// Every name the reports print for a character can be queried: the line break of a text,
// the byte-order mark of a file saved by Notepad; a backslash or a U alone is itself.
TEST(Neighbors, EveryLabelTheReportsPrintCanBeQueried) {
  const EmbeddingView v =
      random_view(std::u32string{U'\t', U'\n', U'\r', U' ', U'+', U'U', U'\\', U'n', 0xA0, 0xFEFF, 0x1F600}, 3, 2);
  for (Token t = 0; t < v.vocab_size(); t++) {
    EXPECT_EQ(parse_token_list(v, token_label(v, t)), std::vector<Token>{t}) << token_label(v, t);
  }
  EXPECT_EQ(parse_token_list(v, "\\n,\\,n,U,+,U+feff,U+1F600"), (std::vector<Token>{1, 6, 7, 5, 4, 9, 10}));
  // a name that does not end its item is a character and more: \\nn, U+00A0x; U+ with
  // fewer than four digits is U then +
  EXPECT_NE(error_of([&] { parse_token_list(v, "\\nn"); }).find("expected ','"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_token_list(v, "U+00A0x"); }).find("expected ','"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_token_list(v, "U+41"); }).find("expected ','"), std::string::npos);
  EXPECT_EQ(error_of([&] { parse_token_list(v, "U+0041"); }), "'A' is not in the model's vocabulary");
  EXPECT_EQ(error_of([&] { parse_token_list(random_view(U"ab", 3, 2), "\\n"); }),
            "'\\n' is not in the model's vocabulary");
}

TEST(Labels, InvisibleCharactersAreSpelledOut) {
  const EmbeddingView v = random_view(std::u32string{U'\t', U'\n', 0x1F, U' ', U'a', 0x85, 0xA0, 0xAD, 0xE9, 0x200B,
                                                     0x200D, 0x202E, 0x2060, 0x2122, 0x3000, 0xFEFF, 0xFFFF, 0xE0041},
                                      2, 1);
  // (the format characters that draw nothing, U+00AD to U+E0041, too; not the trade mark)
  const std::vector<std::string> want = {"\\t",    "\\n",      "U+001F", "<space>", "a",      "U+0085", "U+00A0",
                                         "U+00AD", "\xC3\xA9", "U+200B", "U+200D",  "U+202E", "U+2060", "\xE2\x84\xA2",
                                         "U+3000", "U+FEFF",   "U+FFFF", "U+E0041", "<BOS>"};
  for (Token t = 0; t < v.vocab_size(); t++) EXPECT_EQ(token_label(v, t), want[static_cast<size_t>(t)]);
}

// ---- Vowels and consonants --------------------------------------------------------------

// Capitals are drawn as rings in the token plot (a text model's capitals begin names and lines).
TEST(LetterClasses, Capitals) {
  for (char32_t c : std::u32string(U"AZMQ\u00c0\u00c9\u00d6\u00d8\u00de")) EXPECT_TRUE(is_capital(c)) << static_cast<uint32_t>(c);
  for (char32_t c : std::u32string(U"az09 .,\n@[`{\u00d7\u00df\u00e0\u00ff\u0100\u044f")) {
    EXPECT_FALSE(is_capital(c)) << static_cast<uint32_t>(c);
  }
}

TEST(LetterClasses, VowelsConsonantsAndOther) {
  for (char32_t c : std::u32string(U"aeiouAEIOU\u00e1\u00e0\u00e2\u00e4\u00e3\u00e5\u0101\u00e9\u00e8\u00ea\u00eb\u0113"
                                   U"\u00ed\u00ec\u00ee\u00ef\u012b\u00f3\u00f2\u00f4\u00f6\u00f5\u00f8\u014d\u00fa\u00f9"
                                   U"\u00fb\u00fc\u016b\u00c1\u00c9\u00cd\u00d3\u00da\u00d8\u00dc\u00e6\u00c6\u0153\u0152"
                                   U"\u0105\u0119\u011b\u0131\u0151\u0171\u016f")) {
    EXPECT_EQ(classify_char(c), LetterClass::vowel) << static_cast<uint32_t>(c);
  }
  for (char32_t c : std::u32string(U"bcdfghjklmnpqrstvwxyzBZY\u00e7\u00c7\u00f1\u00d1\u00df\u00f0\u00fe\u00fd\u00dd\u00ff"
                                   U"\u0142\u0141\u017e\u017d\u0161\u010d\u0107\u0144\u0159\u017f\u0138")) {
    EXPECT_EQ(classify_char(c), LetterClass::consonant) << static_cast<uint32_t>(c);
  }
  // Digits, punctuation, white space, symbols, ordinal indicators, micro sign, and
  // letters of other scripts (Cyrillic, Greek, Han, Latin Extended-B).
  for (char32_t c : std::u32string(U"0123456789 -'.,_@[`{~\t\u00d7\u00f7\u00aa\u00ba\u00b5\u00a0\u044f\u0430\u03b1\u7f8e"
                                   U"\u0180\u01b0\U0001F600")) {
    EXPECT_EQ(classify_char(c), LetterClass::other) << static_cast<uint32_t>(c);
  }
  // The ends of every run of vowels and consonants in Latin-1 and Latin Extended-A.
  for (char32_t c : {0xC0, 0xC6, 0xC8, 0xCF, 0xD2, 0xD6, 0xD8, 0xDC, 0xE0, 0xE6, 0xE8, 0xEF, 0xF2, 0xF6, 0xF8, 0xFC,
                     0x100, 0x105, 0x112, 0x11B, 0x128, 0x133, 0x14C, 0x153, 0x168, 0x173}) {
    EXPECT_EQ(classify_char(c), LetterClass::vowel) << static_cast<uint32_t>(c);
  }
  for (char32_t c : {0xC7, 0xD0, 0xD1, 0xDD, 0xDE, 0xDF, 0xE7, 0xF0, 0xF1, 0xFD, 0xFE, 0xFF, 0x106, 0x111, 0x127,
                     0x134, 0x14B, 0x154, 0x167, 0x174, 0x17F}) {
    EXPECT_EQ(classify_char(c), LetterClass::consonant) << static_cast<uint32_t>(c);
  }
  for (char32_t c : {0xBF, 0xD7, 0xF7, 0x180}) EXPECT_EQ(classify_char(c), LetterClass::other) << static_cast<uint32_t>(c);
  int vowels = 0, consonants = 0;
  for (char32_t c = 0; c < 0x80; c++) {
    vowels += classify_char(c) == LetterClass::vowel;
    consonants += classify_char(c) == LetterClass::consonant;
  }
  EXPECT_EQ(vowels, 10);
  EXPECT_EQ(consonants, 42);
  const EmbeddingView v = random_view(U"1ab", 2, 1);
  EXPECT_EQ(classify_token(v, 0), LetterClass::other);
  EXPECT_EQ(classify_token(v, 1), LetterClass::vowel);
  EXPECT_EQ(classify_token(v, 2), LetterClass::consonant);
  EXPECT_EQ(classify_token(v, v.bos()), LetterClass::other);
}

TEST(LetterClasses, SummaryNumbersOnAHandMadeEmbedding) {
  // Sorted vocab: '1' a b c e. Vowels a (1,0,0) and e (1,1,0): cos 0.7071. Consonants
  // b (0,0,1) and c (0,1,0): cos 0. Across: a-b 0, a-c 0, e-b 0, e-c 0.7071: mean 0.1768.
  const EmbeddingView v = make_view(U"1abce", 3,
                                    {/*1*/ 1, 1, 1, /*a*/ 1, 0, 0, /*b*/ 0, 0, 1, /*c*/ 0, 1, 0, /*e*/ 1, 1, 0,
                                     /*BOS*/ -1, 0, 0},
                                    1, {0, 0, 0});
  const ClassSimilarity s = class_similarity(v);
  EXPECT_EQ(s.vowels, 2);
  EXPECT_EQ(s.consonants, 2);
  EXPECT_EQ(s.others, 2);
  EXPECT_NEAR(s.within_vowels, std::sqrt(0.5), 1e-15);
  EXPECT_NEAR(s.within_consonants, 0.0, 1e-15);
  EXPECT_NEAR(s.across, std::sqrt(0.5) / 4, 1e-15);
  EXPECT_EQ(class_similarity_line(v),
            "cosine similarity: within vowels 0.71 (2 tokens), within consonants 0.00 (2 tokens), across 0.18");
}

TEST(LetterClasses, SummarySaysWhenAClassIsTooSmall) {
  EXPECT_EQ(class_similarity_line(make_view(U"ab", 2, {1, 0, 1, 1, 0, 1}, 1, {0, 0})),
            "cosine similarity: within vowels n/a (1 token; needs 2), within consonants n/a (1 token; needs 2), "
            "across 0.71");
  EXPECT_EQ(class_similarity_line(make_view(U"bc", 2, {1, 0, 1, 1, 0, 1}, 1, {0, 0})),
            "cosine similarity: within vowels n/a (0 tokens; needs 2), within consonants 0.71 (2 tokens), "
            "across n/a (no vowel-consonant pairs)");
  const ClassSimilarity s = class_similarity(make_view(U"bc", 2, {1, 0, 1, 1, 0, 1}, 1, {0, 0}));
  EXPECT_TRUE(std::isnan(s.within_vowels));
  EXPECT_TRUE(std::isnan(s.across));
}

// ---- PCA ------------------------------------------------------------------------------------

TEST(Pca, JacobiOnKnownMatrices) {
  const SymmetricEigen e = symmetric_eigen(std::vector<double>{2, 1, 1, 2}, 2);
  EXPECT_NEAR(e.values[0], 3, 1e-14);
  EXPECT_NEAR(e.values[1], 1, 1e-14);
  EXPECT_NEAR(e.vectors[0], std::sqrt(0.5), 1e-14);
  EXPECT_NEAR(e.vectors[1], std::sqrt(0.5), 1e-14);
  EXPECT_NEAR(e.vectors[2], std::sqrt(0.5), 1e-14);  // (1, -1)/sqrt 2: the first of two equal
  EXPECT_NEAR(e.vectors[3], -std::sqrt(0.5), 1e-14);  // magnitudes is made positive

  // A random symmetric 7x7: A v = lambda v, orthonormal vectors, values descending.
  const int n = 7;
  std::vector<double> a = numbers(n * n, 5);
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < i; j++) a[i * n + j] = a[j * n + i];
  }
  const SymmetricEigen r = symmetric_eigen(a, n);
  for (int k = 0; k < n; k++) {
    if (k > 0) {
      EXPECT_GE(r.values[k - 1], r.values[k]);
    }
    for (int i = 0; i < n; i++) {
      double av = 0;
      for (int j = 0; j < n; j++) av += a[i * n + j] * r.vectors[k * n + j];
      EXPECT_NEAR(av, r.values[k] * r.vectors[k * n + i], 1e-12);
    }
    for (int l = 0; l < n; l++) {
      double dot = 0;
      for (int j = 0; j < n; j++) dot += r.vectors[k * n + j] * r.vectors[l * n + j];
      EXPECT_NEAR(dot, k == l ? 1.0 : 0.0, 1e-12);
    }
  }
  EXPECT_THROW(symmetric_eigen(std::vector<double>{1, 2, 3}, 2), Error);
}

TEST(Pca, PointsOnALineHaveOneComponent) {
  // Rows c + t u in 4-D: PC1 explains everything and is u, signed so that its largest
  // component (-0.8 in u) is positive.
  const double u[4] = {0.2, -0.8, 0.4, 0.4};
  const double c[4] = {3, -1, 0.5, 2};
  const double t[5] = {-2, -1, 0, 1, 3};  // mean 0.2
  const double norm = std::sqrt(0.04 + 0.64 + 0.16 + 0.16);
  std::vector<double> rows;
  for (double ti : t) {
    for (int k = 0; k < 4; k++) rows.push_back(c[k] + ti * u[k]);
  }
  const Pca2 p = pca_2d(rows, 5, 4);
  EXPECT_NEAR(p.variance_share[0], 1.0, 1e-12);
  EXPECT_NEAR(p.variance_share[1], 0.0, 1e-12);
  for (int k = 0; k < 4; k++) EXPECT_NEAR(p.axes[0][static_cast<size_t>(k)], -u[k] / norm, 1e-12);
  for (int r = 0; r < 5; r++) {
    EXPECT_NEAR(p.coords[static_cast<size_t>(2 * r)], -(t[r] - 0.2) * norm, 1e-12);
    EXPECT_NEAR(p.coords[static_cast<size_t>(2 * r + 1)], 0.0, 1e-12);
  }
}

TEST(Pca, RecoversARotatedCross) {
  // (+-3, 0) and (0, +-1), rotated by 30 degrees, in 3-D, moved off the origin:
  // variances 4.5 and 0.5, shares 0.9 and 0.1, axes the rotated x and y.
  const double cs = std::cos(M_PI / 6), sn = std::sin(M_PI / 6);
  const double pts[4][2] = {{3, 0}, {-3, 0}, {0, 1}, {0, -1}};
  std::vector<double> rows;
  for (const auto& q : pts) {
    rows.push_back(5 + cs * q[0] - sn * q[1]);
    rows.push_back(-7 + sn * q[0] + cs * q[1]);
    rows.push_back(2);
  }
  const Pca2 p = pca_2d(rows, 4, 3);
  EXPECT_NEAR(p.variance_share[0], 0.9, 1e-12);
  EXPECT_NEAR(p.variance_share[1], 0.1, 1e-12);
  EXPECT_NEAR(p.total_variance, 5.0, 1e-12);
  EXPECT_NEAR(p.axes[0][0], cs, 1e-12);
  EXPECT_NEAR(p.axes[0][1], sn, 1e-12);
  EXPECT_NEAR(p.axes[0][2], 0, 1e-12);
  EXPECT_NEAR(p.axes[1][0], -sn, 1e-12);  // largest component cos 30 made positive
  EXPECT_NEAR(p.axes[1][1], cs, 1e-12);
  for (int r = 0; r < 4; r++) {
    EXPECT_NEAR(p.coords[static_cast<size_t>(2 * r)], pts[r][0], 1e-12);
    EXPECT_NEAR(p.coords[static_cast<size_t>(2 * r + 1)], pts[r][1], 1e-12);
  }
}

TEST(Pca, SignsDoNotDependOnTheDataSignOrRowOrder) {
  const std::vector<double> rows = numbers(9 * 5, 11);
  std::vector<double> negated(rows.size()), reversed;
  for (size_t i = 0; i < rows.size(); i++) negated[i] = -rows[i];
  for (int r = 8; r >= 0; r--) reversed.insert(reversed.end(), rows.begin() + r * 5, rows.begin() + r * 5 + 5);
  const Pca2 p = pca_2d(rows, 9, 5), pn = pca_2d(negated, 9, 5), pr = pca_2d(reversed, 9, 5);
  for (int k = 0; k < 2; k++) {
    size_t big = 0;
    for (size_t i = 0; i < 5; i++) {
      if (std::abs(p.axes[k][i]) > std::abs(p.axes[k][big])) big = i;
      EXPECT_NEAR(pn.axes[k][i], p.axes[k][i], 1e-12);
      EXPECT_NEAR(pr.axes[k][i], p.axes[k][i], 1e-12);
    }
    EXPECT_GT(p.axes[k][big], 0);
  }
  // Same axes, so the negated data's coordinates are negated.
  for (size_t i = 0; i < p.coords.size(); i++) EXPECT_NEAR(pn.coords[i], -p.coords[i], 1e-12);
}

TEST(Pca, DegenerateInputsGiveZerosNotNan) {
  const Pca2 same = pca_2d(std::vector<double>{1, 2, 1, 2, 1, 2}, 3, 2);
  EXPECT_EQ(same.variance_share[0], 0.0);
  for (double x : same.coords) EXPECT_EQ(x, 0.0);
  const Pca2 narrow = pca_2d(std::vector<double>{1, 2, 4}, 3, 1);  // one column: one axis
  EXPECT_NEAR(narrow.variance_share[0], 1.0, 1e-15);
  EXPECT_EQ(narrow.variance_share[1], 0.0);
  EXPECT_EQ(narrow.axes[1], std::vector<double>{0.0});
  EXPECT_THROW(pca_2d(std::vector<double>{1, 2, 3}, 2, 2), Error);
}

TEST(Pca, TokenAndPositionTablesOfAView) {
  const EmbeddingView v = random_view(U"abcdef", 4, 5);
  const Pca2 t = token_pca(v), p = position_pca(v);
  EXPECT_EQ(t.rows, 7);
  EXPECT_EQ(p.rows, 5);
  EXPECT_EQ(t.coords.size(), 14u);
  EXPECT_GE(t.variance_share[0], t.variance_share[1]);
  EXPECT_LE(t.variance_share[0] + t.variance_share[1], 1.0 + 1e-12);
}

// ---- SVG files --------------------------------------------------------------------------------

// A vocabulary that needs escaping in XML: space, " & ' < and two non-ASCII letters.
const std::u32string kTrickyVocab = U" \"&'<aek\u00e9\u0436";

TEST(EmbeddingPlot, StandaloneXmlWithEveryLabelEscaped) {
  const EmbeddingView v = random_view(kTrickyVocab, 6, 7);
  TempDir dir;
  const std::string path = dir.file("embed.svg");
  write_embedding_plot_svg(path, v);
  const std::string bytes = read_file(path);
  const XmlResult xml = check_xml(bytes);
  ASSERT_EQ(xml.error, "");
  expect_standalone_svg(bytes, xml);
  for (Token t = 0; t < v.vocab_size(); t++) EXPECT_GE(count_of(xml.texts, token_label(v, t)), 1) << token_label(v, t);
  for (const char* label : {"<BOS>", "&", "\"", "'", "<", "\xC3\xA9", "\xD0\xB6", "<space>"}) {
    EXPECT_EQ(count_of(xml.texts, label), 1) << label;
  }
  EXPECT_NE(bytes.find(">&lt;BOS&gt;</text>"), std::string::npos);
  EXPECT_NE(bytes.find(">&amp;</text>"), std::string::npos);
  EXPECT_NE(bytes.find(">&quot;</text>"), std::string::npos);
  EXPECT_NE(bytes.find(">\xC3\xA9</text>"), std::string::npos);  // UTF-8 as is
  EXPECT_EQ(bytes.find("<BOS>"), std::string::npos);
  // Positions 0..6 labelled; axes titled with the variance each explains.
  for (int p = 0; p < 7; p++) EXPECT_GE(count_of(xml.texts, std::to_string(p)), 1) << p;
  const Pca2 tp = token_pca(v);
  char want[64];
  std::snprintf(want, sizeof want, "PC1 (%.1f%% of variance)", 100 * tp.variance_share[0]);
  EXPECT_EQ(count_of(xml.texts, want), 1) << want;
  std::snprintf(want, sizeof want, "PC2 (%.1f%% of variance)", 100 * tp.variance_share[1]);
  EXPECT_EQ(count_of(xml.texts, want), 1) << want;
  // The legend counts: vowels a e é, consonant k, the rest other (with BOS).
  EXPECT_EQ(count_of(xml.texts, "vowel (3)"), 1);
  EXPECT_EQ(count_of(xml.texts, "consonant (1)"), 1);
  EXPECT_EQ(count_of(xml.texts, "other (7)"), 1);
  EXPECT_EQ(xml.elements.at("circle"), 11 + 7 + 3);  // tokens, positions, legend
  EXPECT_LT(bytes.size(), 40000u);

  // The points are the PCA coordinates, mapped by one increasing affine map per axis
  // (y grows downwards in SVG), and each is labelled right beside it: token circles
  // come first, position circles last.
  std::vector<const XmlNode*> circles;
  std::vector<const XmlNode*> next_text;
  for (size_t i = 0; i < xml.nodes.size(); i++) {
    if (xml.nodes[i].name != "circle") continue;
    circles.push_back(&xml.nodes[i]);
    next_text.push_back(i + 1 < xml.nodes.size() && xml.nodes[i + 1].name == "text" ? &xml.nodes[i + 1] : nullptr);
  }
  ASSERT_EQ(circles.size(), 21u);
  auto check_panel = [&](const Pca2& pca, size_t first, const std::function<std::string(int64_t)>& label) {
    for (int axis = 0; axis < 2; axis++) {
      const char* attr = axis == 0 ? "cx" : "cy";
      // The map through the two extreme points, then every other point must follow it.
      size_t lo = 0, hi = 0;
      for (size_t r = 0; r < static_cast<size_t>(pca.rows); r++) {
        if (pca.coords[2 * r + static_cast<size_t>(axis)] < pca.coords[2 * lo + static_cast<size_t>(axis)]) lo = r;
        if (pca.coords[2 * r + static_cast<size_t>(axis)] > pca.coords[2 * hi + static_cast<size_t>(axis)]) hi = r;
      }
      const double c_lo = pca.coords[2 * lo + static_cast<size_t>(axis)], c_hi = pca.coords[2 * hi + static_cast<size_t>(axis)];
      const double p_lo = std::stod(circles[first + lo]->attrs.at(attr)), p_hi = std::stod(circles[first + hi]->attrs.at(attr));
      const double scale = (p_hi - p_lo) / (c_hi - c_lo);
      EXPECT_GT(axis == 0 ? scale : -scale, 10.0);
      for (size_t r = 0; r < static_cast<size_t>(pca.rows); r++) {
        const double want = p_lo + (pca.coords[2 * r + static_cast<size_t>(axis)] - c_lo) * scale;
        EXPECT_NEAR(std::stod(circles[first + r]->attrs.at(attr)), want, 0.02) << r;
      }
    }
    for (size_t r = 0; r < static_cast<size_t>(pca.rows); r++) {
      ASSERT_NE(next_text[first + r], nullptr);
      EXPECT_EQ(next_text[first + r]->text, label(static_cast<int64_t>(r)));
      EXPECT_NEAR(std::stod(next_text[first + r]->attrs.at("x")), std::stod(circles[first + r]->attrs.at("cx")) + 5, 0.02);
    }
  };
  check_panel(tp, 0, [&](int64_t t) { return token_label(v, static_cast<Token>(t)); });
  check_panel(position_pca(v), circles.size() - 7, [](int64_t p) { return std::to_string(p); });
}

TEST(Heatmap, EveryRowAndColumnLabelledWithTheDivergingScale) {
  const EmbeddingView v = random_view(kTrickyVocab, 5, 3);
  TempDir dir;
  const std::string path = dir.file("heat.svg");
  write_similarity_heatmap_svg(path, v);
  const std::string bytes = read_file(path);
  const XmlResult xml = check_xml(bytes);
  ASSERT_EQ(xml.error, "");
  expect_standalone_svg(bytes, xml);
  for (Token t = 0; t < v.vocab_size(); t++) EXPECT_EQ(count_of(xml.texts, token_label(v, t)), 2) << token_label(v, t);
  const int64_t V = v.vocab_size();
  EXPECT_GE(xml.elements.at("rect"), V * V);
  // The diagonal is +1: the reddest colour, once per token at least.
  EXPECT_EQ(diverging_color(1.0), "#b2182b");
  EXPECT_EQ(diverging_color(-1.0), "#2166ac");
  EXPECT_EQ(diverging_color(0.0), "#f7f7f7");
  EXPECT_GE(count_substr(bytes, "fill=\"#b2182b\""), static_cast<size_t>(V));
  // Tooltips carry the value; the legend's ends are -1 and 1.
  EXPECT_EQ(count_of(xml.texts, "a / a 1.000"), 1);
  const std::vector<double> sim = token_similarity_matrix(v);
  char tip[64];
  std::snprintf(tip, sizeof tip, "<BOS> / & %.3f", sim[static_cast<size_t>((V - 1) * V + 2)]);
  EXPECT_EQ(count_of(xml.texts, tip), 1) << tip;
  EXPECT_EQ(count_of(xml.texts, "-1.0"), 1);
  EXPECT_EQ(count_of(xml.texts, "1.0"), 1);

  // Each label sits beside its own row and above its own column: the diagonal cell of
  // token t (found by its tooltip) spans the row label's baseline less a third of the
  // font, and the column label's (rotated) x.
  for (Token t = 0; t < V; t++) {
    const std::string label = token_label(v, t);
    const XmlNode* diag = nullptr;
    for (const XmlNode& n : xml.nodes) {
      if (n.name == "title" && n.text == label + " / " + label + " 1.000") diag = &xml.nodes[static_cast<size_t>(n.parent)];
    }
    ASSERT_NE(diag, nullptr) << label;
    const double x = std::stod(diag->attrs.at("x")), y = std::stod(diag->attrs.at("y"));
    const double w = std::stod(diag->attrs.at("width")), h = std::stod(diag->attrs.at("height"));
    int row_labels = 0, column_labels = 0;
    for (const XmlNode& n : xml.nodes) {
      if (n.name != "text" || n.text != label) continue;
      const double tx = std::stod(n.attrs.at("x")), ty = std::stod(n.attrs.at("y"));
      if (n.attrs.count("transform")) {
        column_labels++;
        EXPECT_GT(tx, x) << label;
        EXPECT_LT(tx, x + w) << label;
        EXPECT_LT(ty, y) << label;  // above the grid
      } else {
        row_labels++;
        EXPECT_GT(ty - 4, y) << label;
        EXPECT_LT(ty - 4, y + h) << label;
        EXPECT_LT(tx, x) << label;  // left of the grid
      }
    }
    EXPECT_EQ(row_labels, 1) << label;
    EXPECT_EQ(column_labels, 1) << label;
  }
}

TEST(Svg, EscapingAndNumbers) {
  EXPECT_EQ(xml_escape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;");
  EXPECT_EQ(svg_num(1.0), "1");
  EXPECT_EQ(svg_num(-0.001), "0");
  EXPECT_EQ(svg_num(2.345678), "2.35");
  EXPECT_EQ(svg_num(-12.5), "-12.5");
  EXPECT_EQ(svg_num(NAN), "0");
  const PlotAxis a = make_axis(0.13, 0.87, 4);
  EXPECT_DOUBLE_EQ(a.step, 0.2);
  EXPECT_NEAR(a.lo, 0.0, 1e-12);
  EXPECT_NEAR(a.hi, 1.0, 1e-12);
  EXPECT_EQ(a.ticks.size(), 6u);
  EXPECT_EQ(tick_label(a.ticks[1], a.step), "0.2");
  const PlotAxis one = make_axis(3, 3, 5);  // a single point still gets a range
  EXPECT_LT(one.lo, 3);
  EXPECT_GT(one.hi, 3);
  EXPECT_EQ(tick_label(2500000, 500000), "2.5e+06");
}

// ---- Projector files ----------------------------------------------------------------------------

TEST(Projector, VectorsAndLabelsInTokenOrder) {
  EmbeddingView v = random_view(U"\t ab\u00e9", 3, 2);
  v.wte[0] = 0.1;                        // not a float: written as the double
  v.wte[1] = static_cast<float>(0.1);    // a float: written as the float's shortest decimal
  v.wte[2] = -1e-20;
  TempDir dir;
  const ProjectorFiles f = export_projector_tsv(dir.file("emb"), v);
  EXPECT_EQ(f.vectors, dir.file("emb_vectors.tsv"));
  EXPECT_EQ(f.labels, dir.file("emb_labels.tsv"));
  const std::string vectors = read_file(f.vectors), labels = read_file(f.labels);
  EXPECT_EQ(labels, "\\t\n<space>\na\nb\n\xC3\xA9\n<BOS>\n");
  std::istringstream in(vectors);
  std::string line;
  int64_t row = 0;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::istringstream cs(line);
    std::string cell;
    while (std::getline(cs, cell, '\t')) cells.push_back(cell);
    ASSERT_EQ(cells.size(), 3u) << line;
    for (size_t k = 0; k < 3; k++) {
      const double want = v.wte[static_cast<size_t>(row * 3) + k];
      const double got = std::strtod(cells[k].c_str(), nullptr);
      if (static_cast<double>(static_cast<float>(want)) == want) {
        EXPECT_EQ(static_cast<float>(got), static_cast<float>(want));
      } else {
        EXPECT_EQ(got, want);
      }
    }
    if (row == 0) {
      EXPECT_EQ(line.substr(0, 8), "0.1\t0.1\t");
    }
    row++;
  }
  EXPECT_EQ(row, v.vocab_size());
  EXPECT_EQ(vectors.back(), '\n');
}

TEST(Projector, FromTheFlatParameterBuffer) {
  ModelConfig c;
  c.n_embd = 4;
  c.n_head = 2;
  c.n_layer = 1;
  c.block_size = 3;
  c.vocab_size = 4;
  const ParamLayout layout(c);
  std::vector<float> params(static_cast<size_t>(layout.total()));
  for (size_t i = 0; i < params.size(); i++) params[i] = static_cast<float>(i);
  const EmbeddingView v = embedding_view_from_params(c, U"abc", params);
  EXPECT_EQ(v.wte.size(), 16u);
  EXPECT_EQ(v.wte[5], static_cast<double>(layout.wte().offset + 5));
  EXPECT_EQ(v.wpe[0], static_cast<double>(layout.wpe().offset));
  EXPECT_EQ(v.wpe.size(), 12u);
  EXPECT_THROW(embedding_view_from_params(c, U"abc", std::span<const float>(params).first(10)), Error);
  EXPECT_THROW(embedding_view_from_params(c, U"ba", std::span<const float>(params)), Error);  // not sorted
}

// ---- show_report --------------------------------------------------------------------------------

// The fake model: after position p, token t has weight ((3 t + p) mod V) + 1.
std::vector<std::vector<double>> fake_predict(const std::vector<Token>& tokens, int64_t V) {
  std::vector<std::vector<double>> out;
  for (size_t p = 0; p < tokens.size(); p++) {
    std::vector<double> w(static_cast<size_t>(V));
    double sum = 0;
    for (int64_t t = 0; t < V; t++) sum += w[static_cast<size_t>(t)] = static_cast<double>((3 * t + static_cast<int64_t>(p)) % V + 1);
    for (double& x : w) x /= sum;
    out.push_back(w);
  }
  return out;
}

std::vector<double> numbers_after(const std::string& line) {
  std::vector<double> out;
  std::istringstream in(line.substr(line.find('=') + 1));
  double x;
  while (in >> x) out.push_back(x);
  return out;
}

TEST(Show, TheSumIsTokenPlusPositionAndTheFakeModelsTopFive) {
  const EmbeddingView v = random_view(U"abcdefg", 3, 4, 7);  // V = 8
  std::vector<Token> seen;
  const std::string report = show_report(v, "ca", [&](const std::vector<Token>& tokens) {
    seen = tokens;
    return fake_predict(tokens, 8);
  });
  EXPECT_EQ(seen, (std::vector<Token>{7, 2, 0}));
  std::istringstream in(report);
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(in, line)) lines.push_back(line);
  const Token tokens[] = {7, 2, 0};
  const char* labels[] = {"<BOS>", "c", "a"};
  for (int p = 0; p < 3; p++) {
    const size_t at = 1 + 4 * static_cast<size_t>(p);
    ASSERT_LT(at + 3, lines.size());
    EXPECT_EQ(lines[at], "pos " + std::to_string(p) + "  " + labels[p] + "  (token " + std::to_string(tokens[p]) + ")");
    EXPECT_EQ(lines[at + 1].rfind("    wte[" + std::to_string(tokens[p]) + "] ", 0), 0u) << lines[at + 1];
    EXPECT_EQ(lines[at + 2].rfind("    wpe[" + std::to_string(p) + "] ", 0), 0u) << lines[at + 2];
    EXPECT_EQ(lines[at + 3].rfind("    sum ", 0), 0u) << lines[at + 3];
    const auto te = numbers_after(lines[at + 1]), pe = numbers_after(lines[at + 2]), sum = numbers_after(lines[at + 3]);
    ASSERT_EQ(sum.size(), 3u);
    for (size_t k = 0; k < 3; k++) {
      const double wte = v.wte[static_cast<size_t>(tokens[p]) * 3 + k], wpe = v.wpe[static_cast<size_t>(p) * 3 + k];
      EXPECT_NEAR(te[k], wte, 0.0005);
      EXPECT_NEAR(pe[k], wpe, 0.0005);
      EXPECT_NEAR(sum[k], wte + wpe, 0.0005);
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.3f", wte + wpe);
      EXPECT_NE(lines[at + 3].find(std::string(buf) == "-0.000" ? "0.000" : buf), std::string::npos);
    }
  }
  // After position p token t weighs ((3t + p) mod 8) + 1 of 36: at p = 0 the order is
  // t = 5 (16 -> 8/36), 2 (7/36), 7 (6/36 = BOS), 4 (5/36), 1 (4/36).
  EXPECT_EQ(lines[13], "top 5 predictions for the next character (<BOS> = end of the text):");
  EXPECT_EQ(lines[14], "pos 0 after <BOS>: f 0.222, c 0.194, <BOS> 0.167, e 0.139, b 0.111");
  EXPECT_EQ(lines[15], "pos 1 after <BOS>c: c 0.222, <BOS> 0.194, e 0.167, b 0.139, g 0.111");
  EXPECT_EQ(lines[16], "pos 2 after <BOS>ca: <BOS> 0.222, e 0.194, b 0.167, g 0.139, d 0.111");
  EXPECT_EQ(lines.size(), 17u);
}

TEST(Show, TiesInPredictionsGoByTokenId) {
  const EmbeddingView v = random_view(U"abcdefg", 2, 2);
  const std::string report = show_report(v, "", [](const std::vector<Token>& tokens) {
    return std::vector<std::vector<double>>(tokens.size(), std::vector<double>(8, 0.125));
  });
  EXPECT_NE(report.find("pos 0 after <BOS>: a 0.125, b 0.125, c 0.125, d 0.125, e 0.125\n"), std::string::npos) << report;
}

TEST(Show, ErrorsNameTheProblem) {
  const EmbeddingView v = random_view(U"abc", 2, 4);
  auto fake = [](const std::vector<Token>& tokens) { return fake_predict(tokens, 4); };
  Error::Kind kind = Error::Kind::runtime;
  EXPECT_EQ(error_of([&] { show_report(v, "abz", fake); }, &kind), "'z' is not in the model's vocabulary");
  EXPECT_EQ(kind, Error::Kind::usage);
  EXPECT_NE(error_of([&] { show_report(v, "abca", fake); }).find("at most block_size - 1 = 3"), std::string::npos);
  EXPECT_NO_THROW(show_report(v, "abc", fake));
  EXPECT_NE(error_of([&] { show_report(v, "\xff", fake); }).find("UTF-8"), std::string::npos);
  EXPECT_NE(error_of([&] {
              show_report(v, "ab", [](const std::vector<Token>&) { return std::vector<std::vector<double>>(1); });
            }).find("returned 1 distributions for 3 positions"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              show_report(v, "a", [](const std::vector<Token>& t) {
                return std::vector<std::vector<double>>(t.size(), std::vector<double>(3));
              });
            }).find("expected vocab_size 4"),
            std::string::npos);
}

// ---- Files that cannot be written ---------------------------------------------------------------

TEST(Files, AMissingFolderIsAnErrorNamingThePath) {
  const EmbeddingView v = random_view(U"ab", 2, 2);
  TempDir dir;
  const std::string missing = dir.file("no-such-folder/out.svg");
  for (const auto& write : std::vector<std::function<void()>>{
           [&] { write_embedding_plot_svg(missing, v); },
           [&] { write_similarity_heatmap_svg(missing, v); },
           [&] { write_loss_plot_svg(missing, {{1, 2.0}}, {}); },
       }) {
    const std::string e = error_of(write);
    EXPECT_NE(e.find("'" + missing + "'"), std::string::npos) << e;
    EXPECT_NE(e.find("No such file or directory"), std::string::npos) << e;
  }
  const std::string e = error_of([&] { export_projector_tsv(dir.file("no-such-folder/p"), v); });
  EXPECT_NE(e.find("'" + dir.file("no-such-folder/p_vectors.tsv") + "'"), std::string::npos) << e;
}

TEST(Files, ReplacedWholeWithNoTemporaryFileLeft) {
  const EmbeddingView v = random_view(U"ab", 2, 2);
  TempDir dir;
  const std::string path = dir.file("p.svg");
  testing::write_file(path, "old");
  write_embedding_plot_svg(path, v);
  EXPECT_EQ(check_xml(read_file(path)).error, "");
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    files++;
    EXPECT_EQ(entry.path().filename(), "p.svg");
  }
  EXPECT_EQ(files, 1);
}

// ---- Loss plot --------------------------------------------------------------------------------

TEST(LossPlot, HugeNoisyRunWithNanStaysSmallAndValid) {
  LossSeries train, val;
  const std::vector<double> noise = numbers(100000, 3);
  for (int64_t s = 1; s <= 100000; s++) {
    double loss = 3.3 * std::exp(-static_cast<double>(s) / 20000) + 1.5 + 0.3 * noise[static_cast<size_t>(s - 1)];
    if (s % 997 == 0) loss = NAN;
    if (s == 5000) loss = INFINITY;
    if (s == 5001) loss = -INFINITY;
    train.emplace_back(s, loss);
    if (s % 1000 == 0) val.emplace_back(s, s == 3000 ? NAN : loss + 0.1);
  }
  TempDir dir;
  const std::string path = dir.file("loss.svg");
  write_loss_plot_svg(path, train, val, "loss of \"run\" <1> & more");
  const std::string bytes = read_file(path);
  EXPECT_LT(bytes.size(), 1000000u);
  const XmlResult xml = check_xml(bytes);
  ASSERT_EQ(xml.error, "");
  expect_standalone_svg(bytes, xml);
  EXPECT_EQ(count_of(xml.texts, "loss of \"run\" <1> & more"), 2);  // <title> and the heading
  EXPECT_EQ(count_of(xml.texts, "step"), 1);
  EXPECT_EQ(count_of(xml.texts, "loss"), 1);
  EXPECT_EQ(count_of(xml.texts, "validation loss"), 1);
  EXPECT_EQ(count_of(xml.texts, "training loss, each step"), 1);
  // Every drawn path has at most kMaxDrawnPoints points.
  for (const std::string& a : xml.attrs) {
    if (a.rfind("M", 0) == 0) {
      EXPECT_LE(static_cast<int64_t>(std::count(a.begin(), a.end(), 'L')) + 1, kMaxDrawnPoints);
    }
  }
  // The x axis ends at a tick at or past the last step; the y axis spans the finite
  // losses (1.22 to 5.1, widened to ticks 1.0 .. 5.5): infinities did not stretch it.
  EXPECT_EQ(count_of(xml.texts, "100000"), 1);
  EXPECT_EQ(count_of(xml.texts, "1.0"), 1);
  EXPECT_EQ(count_of(xml.texts, "5.5"), 1);
  EXPECT_EQ(count_of(xml.texts, "6.0"), 0);
}

TEST(LossPlot, EmptyValidationSinglePointAndNothing) {
  TempDir dir;
  write_loss_plot_svg(dir.file("a.svg"), {{1, 3.3}, {2, 3.1}, {3, 3.2}}, {});
  std::string bytes = read_file(dir.file("a.svg"));
  XmlResult xml = check_xml(bytes);
  expect_standalone_svg(bytes, xml);
  EXPECT_EQ(count_of(xml.texts, "validation loss"), 0);
  EXPECT_EQ(xml.elements.count("circle"), 0u);

  write_loss_plot_svg(dir.file("b.svg"), {{7, 2.5}}, {{7, 2.6}});
  bytes = read_file(dir.file("b.svg"));
  xml = check_xml(bytes);
  expect_standalone_svg(bytes, xml);
  EXPECT_EQ(count_of(xml.texts, "validation loss"), 1);
  EXPECT_EQ(xml.elements.at("circle"), 3);  // the train point, the val point, the legend's marker

  write_loss_plot_svg(dir.file("c.svg"), {{1, NAN}}, {});
  bytes = read_file(dir.file("c.svg"));
  xml = check_xml(bytes);
  expect_standalone_svg(bytes, xml);
  EXPECT_EQ(count_of(xml.texts, "no finite loss values to plot"), 1);
}

TEST(LossPlot, HugeStepNumbers) {
  TempDir dir;
  const int64_t base = int64_t{1} << 40;
  write_loss_plot_svg(dir.file("big.svg"), {{base, 2.0}, {base + 1000000, 1.9}, {base + 2000000, 1.8}}, {});
  const std::string bytes = read_file(dir.file("big.svg"));
  expect_standalone_svg(bytes, check_xml(bytes));
}

}  // namespace
}  // namespace microgpt
