// Helpers for the tests of checkpoints and of the commands that read them (here and in
// tests/cli): safetensors files taken apart and put back together (to check a header
// and to build damaged files), an independent CRC-32, a strict XML well-formedness
// check for the SVG files, small data files and the step lines of a run's output.
// Header-only, so that both test binaries can use it.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/text.h"
#include "data/dataset.h"
#include "test_support.h"

namespace microgpt::testing {

// ---- CRC-32 -----------------------------------------------------------------------------

// Bit by bit, as zlib defines it (reflected polynomial 0xEDB88320, initial and final
// value 0xFFFFFFFF), so that it shares no code with core/files.h's table-driven one.
inline uint32_t slow_crc32(std::string_view bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

inline std::string hex8(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

// ---- safetensors --------------------------------------------------------------------------

struct Safetensors {
  uint64_t header_len = 0;  // as the first 8 bytes say
  std::string header_text;  // the header's bytes, padding included
  nlohmann::json header;
  std::string data;  // everything after the header
};

// Takes a file apart; fails the test (and returns an empty header) when the bytes are
// not a safetensors file.
inline Safetensors parse_safetensors(const std::string& bytes) {
  Safetensors s;
  if (bytes.size() < 8) {
    ADD_FAILURE() << "shorter than 8 bytes";
    return s;
  }
  for (int i = 7; i >= 0; i--) {
    s.header_len = (s.header_len << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  }
  if (s.header_len > bytes.size() - 8) {
    ADD_FAILURE() << "header length " << s.header_len << " beyond the file (" << bytes.size() << " bytes)";
    return s;
  }
  s.header_text = bytes.substr(8, s.header_len);
  s.header = nlohmann::json::parse(s.header_text, nullptr, /*allow_exceptions=*/false);
  if (s.header.is_discarded()) ADD_FAILURE() << "header does not parse: " << s.header_text.substr(0, 200);
  s.data = bytes.substr(8 + s.header_len);
  return s;
}

// Puts a file together: the length prefix, the header (padded with spaces so the data
// starts 8-byte aligned, as microgpt writes it) and the data.
inline std::string build_safetensors(const nlohmann::json& header, const std::string& data) {
  std::string text = header.dump();
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');
  std::string out(8, '\0');
  const uint64_t n = text.size();
  for (int i = 0; i < 8; i++) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return out + text + data;
}

// A metadata entry of a checkpoint file ("" when absent).
inline std::string checkpoint_meta(const std::string& path, const std::string& key) {
  const Safetensors s = parse_safetensors(read_file(path));
  if (!s.header.is_object() || !s.header.contains("__metadata__")) return "";
  return s.header["__metadata__"].value(key, "");
}

// ---- Data files and output ----------------------------------------------------------------

// The first n names of the embedded list, one a line.
inline std::string first_names(int64_t n) {
  const Dataset d = embedded_dataset();
  std::string text;
  for (int64_t i = 0; i < n && i < d.size(); i++) text += encode_utf8(std::u32string(d.doc(i))) + "\n";
  return text;
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

// The lines of a run's output that say what it computed: "step ...", "sample ...".
inline std::vector<std::string> result_lines(const std::string& text) {
  std::vector<std::string> out;
  for (const std::string& l : lines_of(text)) {
    if (l.rfind("step ", 0) == 0 || l.rfind("sample ", 0) == 0) out.push_back(l);
  }
  return out;
}

// The names of "sample  k: name" lines.
inline std::vector<std::string> sample_names(const std::string& text) {
  std::vector<std::string> names;
  for (const std::string& l : lines_of(text)) {
    if (l.rfind("sample ", 0) != 0) continue;
    const size_t colon = l.find(": ");
    names.push_back(colon == std::string::npos ? "" : l.substr(colon + 2));
  }
  return names;
}

inline size_t count_substr(const std::string& s, const std::string& sub) {
  size_t n = 0;
  for (size_t p = s.find(sub); p != std::string::npos; p = s.find(sub, p + 1)) n++;
  return n;
}

// ---- A strict XML well-formedness check (the minimal part of tests/inspect's) -------------

struct XmlCheck {
  std::string error;               // empty when well formed
  std::vector<std::string> texts;  // decoded character data
  std::map<std::string, int> elements;
};

inline XmlCheck check_xml(const std::string& bytes) {
  XmlCheck r;
  const auto decoded = decode_utf8(bytes);
  if (!decoded) {
    r.error = "not UTF-8";
    return r;
  }
  const std::u32string& s = *decoded;
  size_t i = 0;
  auto fail = [&](const std::string& why) {
    if (r.error.empty()) r.error = why + " at character " + std::to_string(i);
  };
  auto is_name_start = [](char32_t c) {
    return (c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z') || c == U'_' || c == U':';
  };
  auto is_name = [&](char32_t c) { return is_name_start(c) || (c >= U'0' && c <= U'9') || c == U'-' || c == U'.'; };
  auto is_space = [](char32_t c) { return c == U' ' || c == U'\t' || c == U'\n' || c == U'\r'; };
  auto skip_space = [&] {
    while (i < s.size() && is_space(s[i])) i++;
  };
  auto name = [&]() -> std::u32string {
    if (i >= s.size() || !is_name_start(s[i])) {
      fail("expected a name");
      return {};
    }
    const size_t b = i;
    while (i < s.size() && is_name(s[i])) i++;
    return s.substr(b, i - b);
  };
  auto char_data = [&](char32_t stop) -> std::u32string {
    std::u32string out;
    while (i < s.size() && s[i] != stop && r.error.empty()) {
      if (s[i] == U'<') {
        fail("raw '<'");
        break;
      }
      if (s[i] != U'&') {
        out += s[i++];
        continue;
      }
      const size_t semi = s.find(U';', i);
      if (semi == std::u32string::npos || semi - i > 12) {
        fail("unterminated entity");
        break;
      }
      const std::u32string ent = s.substr(i + 1, semi - i - 1);
      static const std::map<std::u32string, char32_t> named = {
          {U"amp", U'&'}, {U"lt", U'<'}, {U"gt", U'>'}, {U"quot", U'"'}, {U"apos", U'\''}};
      if (auto it = named.find(ent); it != named.end()) {
        out += it->second;
      } else if (ent.size() >= 2 && ent[0] == U'#') {
        const bool hex = ent[1] == U'x';
        const std::string digits = encode_utf8(ent.substr(hex ? 2 : 1));
        if (digits.empty() ||
            digits.find_first_not_of(hex ? "0123456789abcdefABCDEF" : "0123456789") != std::string::npos) {
          fail("bad character reference");
          break;
        }
        out += static_cast<char32_t>(std::strtoul(digits.c_str(), nullptr, hex ? 16 : 10));
      } else {
        fail("unknown entity");
        break;
      }
      i = semi + 1;
    }
    return out;
  };
  if (s.compare(0, 5, U"<?xml") == 0) {
    const size_t e = s.find(U"?>");
    if (e == std::u32string::npos) {
      fail("unterminated XML declaration");
      return r;
    }
    i = e + 2;
  }
  std::vector<std::u32string> stack;
  bool seen_root = false;
  while (i < s.size() && r.error.empty()) {
    if (s[i] != U'<') {
      const std::u32string text = char_data(U'<');
      if (stack.empty() && text.find_first_not_of(U" \t\r\n") != std::u32string::npos) {
        fail("text outside the root element");
      }
      if (!stack.empty() && !text.empty()) r.texts.push_back(encode_utf8(text));
      continue;
    }
    if (s.compare(i, 4, U"<!--") == 0) {
      const size_t e = s.find(U"-->", i + 4);
      if (e == std::u32string::npos) fail("unterminated comment");
      i = e == std::u32string::npos ? s.size() : e + 3;
      continue;
    }
    if (s.compare(i, 2, U"<!") == 0 || s.compare(i, 2, U"<?") == 0) {
      fail("declaration or processing instruction not expected here");
      break;
    }
    if (s.compare(i, 2, U"</") == 0) {
      i += 2;
      const std::u32string n = name();
      skip_space();
      if (i >= s.size() || s[i] != U'>') fail("bad end tag");
      i++;
      if (stack.empty() || stack.back() != n) fail("end tag </" + encode_utf8(n) + "> does not match");
      if (!stack.empty()) stack.pop_back();
      continue;
    }
    i++;
    if (stack.empty() && seen_root) {
      fail("a second root element");
      break;
    }
    seen_root = true;
    const std::u32string n = name();
    r.elements[encode_utf8(n)]++;
    std::set<std::u32string> seen;
    while (r.error.empty()) {
      const bool spaced = i < s.size() && is_space(s[i]);
      skip_space();
      if (i >= s.size()) {
        fail("unterminated tag");
        break;
      }
      if (s[i] == U'>') {
        i++;
        stack.push_back(n);
        break;
      }
      if (s.compare(i, 2, U"/>") == 0) {
        i += 2;
        break;
      }
      if (!spaced) fail("attributes must be separated by white space");
      const std::u32string a = name();
      if (!seen.insert(a).second) fail("duplicate attribute " + encode_utf8(a));
      skip_space();
      if (i >= s.size() || s[i] != U'=') {
        fail("attribute without '='");
        break;
      }
      i++;
      skip_space();
      if (i >= s.size() || (s[i] != U'"' && s[i] != U'\'')) {
        fail("unquoted attribute value");
        break;
      }
      const char32_t q = s[i++];
      char_data(q);
      if (i >= s.size()) fail("unterminated attribute value");
      i++;
    }
  }
  if (r.error.empty() && !stack.empty()) r.error = "unclosed element <" + encode_utf8(stack.back()) + ">";
  if (r.error.empty() && !seen_root) r.error = "no root element";
  return r;
}

}  // namespace microgpt::testing
