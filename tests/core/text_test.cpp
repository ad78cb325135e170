#include <gtest/gtest.h>

#include <limits>

#include "core/text.h"

namespace microgpt {
namespace {

TEST(Utf8, DecodesEveryLength) {
  auto t = decode_utf8("a\xC3\xA9\xE7\xBE\x8E\xF0\x9F\xA6\x8A");  // a, é, 美, 🦊
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, (std::u32string{U'a', U'\u00e9', U'\u7f8e', U'\U0001F98A'}));
  EXPECT_EQ(encode_utf8(*t), "a\xC3\xA9\xE7\xBE\x8E\xF0\x9F\xA6\x8A");
}

TEST(Utf8, KeepsNulAndByteOrderMark) {
  auto t = decode_utf8(std::string_view("\xEF\xBB\xBFx\0y", 6));
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, (std::u32string{0xFEFF, U'x', 0, U'y'}));
}

TEST(Utf8, RejectsWhatPythonRejects) {
  struct Case {
    std::string bytes;
    int64_t offset;
  };
  const Case cases[] = {
      {"ab\x80", 2},              // lone continuation byte
      {"\xC0\x80", 0},            // overlong NUL
      {"\xE0\x80\xAF", 0},        // overlong '/'
      {"x\xED\xA0\x80", 1},       // UTF-16 surrogate
      {"\xF4\x90\x80\x80", 0},    // above U+10FFFF
      {"\xF5\x80\x80\x80", 0},    // invalid lead byte
      {"ok\xE2\x82", 2},          // truncated at the end
      {"\xC3(", 0},               // continuation missing
  };
  for (const Case& c : cases) {
    Utf8Failure f;
    EXPECT_FALSE(decode_utf8(c.bytes, &f)) << c.bytes;
    EXPECT_EQ(f.byte_offset, c.offset) << c.bytes;
  }
}

TEST(PythonSpace, MatchesStrIsspace) {
  // Every code point for which Python's str.isspace() is true.
  const char32_t spaces[] = {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0,
                             0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007,
                             0x2008, 0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
  int count = 0;
  for (char32_t c = 0; c < 0x110000; c++) count += is_python_space(c);
  EXPECT_EQ(count, 29);
  for (char32_t c : spaces) EXPECT_TRUE(is_python_space(c)) << static_cast<uint32_t>(c);
  EXPECT_FALSE(is_python_space(0x200B));  // zero width space is not white space to Python
  EXPECT_FALSE(is_python_space(0xFEFF));
  EXPECT_FALSE(is_python_space(0));
}

TEST(PythonFloatRepr, MatchesRepr) {
  EXPECT_EQ(python_float_repr(3.3659669475848504), "3.3659669475848504");
  EXPECT_EQ(python_float_repr(0.1), "0.1");
  EXPECT_EQ(python_float_repr(2.0), "2.0");
  EXPECT_EQ(python_float_repr(0.0), "0.0");
  EXPECT_EQ(python_float_repr(-0.0), "-0.0");
  EXPECT_EQ(python_float_repr(1e-5), "1e-05");
  EXPECT_EQ(python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(python_float_repr(1.5e-7), "1.5e-07");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(1234567890123456.0), "1234567890123456.0");
  EXPECT_EQ(python_float_repr(12345678901234567.0), "1.2345678901234568e+16");
  EXPECT_EQ(python_float_repr(-2.5e-300), "-2.5e-300");
  EXPECT_EQ(python_float_repr(1.7976931348623157e308), "1.7976931348623157e+308");
  EXPECT_EQ(python_float_repr(5e-324), "5e-324");
  EXPECT_EQ(python_float_repr(123.456), "123.456");
  EXPECT_EQ(python_float_repr(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(python_float_repr(std::numeric_limits<double>::quiet_NaN()), "nan");
}

TEST(JsonQuote, MatchesJsonDumps) {
  // json.dumps("...") with its default ensure_ascii=True
  EXPECT_EQ(json_quote(U"kamon"), "\"kamon\"");
  EXPECT_EQ(json_quote(U"Zo\u00eb"), "\"Zo\\u00eb\"");
  EXPECT_EQ(json_quote(U"\U0001F98Afox"), "\"\\ud83e\\udd8afox\"");
  EXPECT_EQ(json_quote(U"a\"b\\c\td\x7f"), "\"a\\\"b\\\\c\\td\\u007f\"");
  EXPECT_EQ(json_quote(std::u32string(1, 0)), "\"\\u0000\"");
  EXPECT_EQ(json_quote(U"\u2028"), "\"\\u2028\"");
}

TEST(Base64, MatchesRfc4648) {
  // RFC 4648's test vectors (section 10), then bytes with the high bit set, and a zero
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foob"), "Zm9vYg==");
  EXPECT_EQ(base64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64(std::string("\xff\xfe\x00\x80", 4)), "//4AgA==");
}

}  // namespace
}  // namespace microgpt
