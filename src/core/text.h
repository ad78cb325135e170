// Text helpers with Python's semantics: strict UTF-8 decoding (as Python's 'utf-8'
// codec: no overlongs, no surrogates, nothing above U+10FFFF), str.isspace(), and
// repr() of a float (the shortest decimal that reads back as the same double).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace microgpt {

// Where strict decoding failed: byte offset of the first bad byte.
struct Utf8Failure {
  int64_t byte_offset = 0;
};

// Decodes one code point from s[0..n), n > 0: returns its length in bytes (1-4), or 0
// when the bytes there are not valid UTF-8.
int decode_utf8_one(const unsigned char* s, size_t n, char32_t* cp);

// Decodes UTF-8 into code points; on failure returns nullopt and fills *failure.
std::optional<std::u32string> decode_utf8(std::string_view bytes, Utf8Failure* failure = nullptr);
std::string encode_utf8(std::u32string_view text);
void append_utf8(std::string& out, char32_t cp);

// Python's str.isspace() for one code point.
bool is_python_space(char32_t cp);

// Python's repr(float): shortest round-trip digits, fixed notation for exponents in
// -4..15, otherwise d.ddde+XX; always a '.0' or exponent so it reads as a float.
std::string python_float_repr(double x);

// `bytes` in base64 (RFC 4648's alphabet, with '=' padding).
std::string base64(std::string_view bytes);

// A JSON string literal as Python's json.dumps writes it (ensure_ascii: \uXXXX escapes).
std::string json_quote(std::u32string_view text);

// `text` made safe to show on one line of a terminal: control characters become \n,
// \r, \t or \xNN, the Unicode line and paragraph separators and NEL \uNNNN, bytes
// that are not UTF-8 \xNN; everything else, other scripts included, is kept. Every
// error message goes through it, so a value a user typed cannot split the line.
std::string one_line(std::string_view text);

}  // namespace microgpt
