#include <gtest/gtest.h>

#include "core/error.h"
#include "core/text.h"
#include "data/dataset.h"
#include "test_support.h"

namespace microgpt {
namespace {

using testing::TempDir;
using testing::write_file;

std::vector<std::u32string> docs_of(const std::string& utf8) { return parse_dataset(utf8, "t.txt").docs(); }

TEST(Documents, UniversalNewlinesAndStripping) {
  EXPECT_EQ(docs_of("emma\r\nolivia\rava\n\n  mia  \n\t\n"),
            (std::vector<std::u32string>{U"emma", U"olivia", U"ava", U"mia"}));
}

TEST(Documents, PythonWhiteSpaceIsStrippedButNotSplitOn) {
  // \x1c-\x1f, \x85, \xa0, \u2028 and \u3000 are white space to str.strip(), but only
  // \n (after universal newlines) splits lines: "ana\u2028maria" stays one document.
  const std::string text = "\x1c" "ana\xE2\x80\xA8maria\xC2\x85\n\xC2\xA0zo\xC3\xAB\xE3\x80\x80\n\v\f\n";
  EXPECT_EQ(docs_of(text), (std::vector<std::u32string>{U"ana\u2028maria", U"zo\u00eb"}));
}

// The same white space on lines that are all ASCII, which take the parser's fast path.
TEST(Documents, AsciiLinesStripTheSeparatorControlsToo) {
  EXPECT_EQ(docs_of("\x1c\x1d" "ann\x1e\x1f\n\x1f" "bob\x1c\n\x1d\x1e\n"), (std::vector<std::u32string>{U"ann", U"bob"}));
}

TEST(Documents, InnerSpacesAndNonAsciiKept) {
  EXPECT_EQ(docs_of("Mary Ann\n\xE7\xBE\x8E\xE5\x92\xB2\nMia\xF0\x9F\x98\x80"),
            (std::vector<std::u32string>{U"Mary Ann", U"\u7f8e\u54b2", U"Mia\U0001F600"}));
}

TEST(Documents, NulAndByteOrderMarkAreCharacters) {
  // As in Python's utf-8 codec: a BOM is U+FEFF, which is not white space.
  EXPECT_EQ(docs_of(std::string("\xEF\xBB\xBF" "a\0b\n", 7)), (std::vector<std::u32string>{U"\uFEFFa" + std::u32string(1, 0) + U"b"}));
}

TEST(Tokenizer, SortedCodePointsThenBos) {
  Tokenizer tok(U"b\u00e9a" U"ab" U"\U0001F98A");
  EXPECT_EQ(tok.chars(), (std::u32string{U'a', U'b', U'\u00e9', U'\U0001F98A'}));
  EXPECT_EQ(tok.bos(), 4);
  EXPECT_EQ(tok.vocab_size(), 5);
  EXPECT_EQ(tok.encode_document(U"b\u00e9a"), (std::vector<Token>{4, 1, 2, 0, 4}));
  EXPECT_EQ(tok.decode({1, 2, 4, 3}), "b\xC3\xA9\xF0\x9F\xA6\x8A");
  EXPECT_EQ(tok.id_of(U'z'), -1);
  EXPECT_THROW(tok.encode_document(U"z"), Error);
}

TEST(Tokenizer, NamesListHas26Letters) {
  const std::string path = testing::shared_dir() + "/data/names.txt";
  REQUIRE_SHARED_FILE(path);
  const Dataset ds = load_dataset(path);
  EXPECT_EQ(ds.size(), 32033);
  EXPECT_EQ(Tokenizer(ds.chars).vocab_size(), 27);
}

TEST(Dataset, EmbeddedListIsTheCommittedFile) {
  const Dataset embedded = embedded_dataset();
  const Dataset file = load_dataset(std::string(MICROGPT_SOURCE_DIR) + "/data/names-cc0.txt");
  EXPECT_EQ(embedded.size(), 8422);
  EXPECT_EQ(embedded.docs(), file.docs());
  EXPECT_EQ(embedded.source, "<embedded names>");
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 1);
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(DatasetErrors, BadUtf8NamesFileAndLine) {
  TempDir dir;
  const std::string path = dir.file("bad.txt");
  write_file(path, "emma\r\nolivia\rava\nbj\xF6rk\nmia\n");  // Latin-1 ö on line 4
  const std::string msg = error_of([&] { load_dataset(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("UTF-8"), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 4"), std::string::npos) << msg;
}

TEST(DatasetErrors, MissingFile) {
  TempDir dir;
  const std::string path = dir.file("nope.txt");
  const std::string msg = error_of([&] { load_dataset(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;
}

TEST(DatasetErrors, Directory) {
  TempDir dir;
  const std::string msg = error_of([&] { load_dataset(dir.path()); });
  EXPECT_NE(msg.find(dir.path()), std::string::npos) << msg;
  EXPECT_NE(msg.find("directory"), std::string::npos) << msg;
}

TEST(DatasetErrors, PathThroughAFile) {
  TempDir dir;
  write_file(dir.file("f"), "x\n");
  const std::string path = dir.file("f") + "/names.txt";
  const std::string msg = error_of([&] { load_dataset(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
}

TEST(DatasetErrors, EmptyAndBlankFiles) {
  TempDir dir;
  for (const std::string content : {"", "\n\n", "  \t\r\n\xC2\xA0\n\xE3\x80\x80"}) {
    write_file(dir.file("empty.txt"), content);
    const std::string msg = error_of([&] { load_dataset(dir.file("empty.txt")); });
    EXPECT_NE(msg.find("no documents"), std::string::npos) << msg;
    EXPECT_NE(msg.find(dir.file("empty.txt")), std::string::npos) << msg;
  }
}

// Threads and processes cut a batch the same way: contiguous documents covering the
// batch, the rows as equal as whole documents allow, and empty parts past the documents.
TEST(BatchPart, ContiguousNearEqualSharesOfTheRows) {
  const std::vector<int64_t> starts = {0, 5, 6, 14, 15, 18, 26};  // 6 documents, 26 rows
  EXPECT_EQ(batch_part(starts, 0, 1).begin, 0);
  EXPECT_EQ(batch_part(starts, 0, 1).end, 6);
  // two parts: row 13, half of the rows, falls inside document 2 (rows 6 to 13), which
  // stays in the first part
  EXPECT_EQ(batch_part(starts, 0, 2).end, 3);
  EXPECT_EQ(batch_part(starts, 1, 2).begin, 3);
  EXPECT_EQ(batch_part(starts, 1, 2).end, 6);
  for (int64_t n = 1; n <= 9; n++) {
    int64_t at = 0;
    for (int64_t p = 0; p < n; p++) {
      const DocRange r = batch_part(starts, p, n);
      EXPECT_EQ(r.begin, at) << n << " parts";
      EXPECT_LE(r.begin, r.end);
      if (p >= 6) {
        EXPECT_EQ(r.begin, r.end) << "a part past the documents is empty";
      }
      at = r.end;
    }
    EXPECT_EQ(at, 6) << n << " parts";
  }
}

}  // namespace
}  // namespace microgpt
