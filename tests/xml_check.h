// A strict XML 1.0 well-formedness checker for the tests of the SVG writers (embed's
// plots, the loss plot): balanced tags, quoted attributes, only XML's five named
// entities and numeric ones, allowed characters, one root. It also returns the decoded
// text and attribute values, so tests can look for every label.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/text.h"

namespace microgpt::testing {

// ---- A strict XML 1.0 well-formedness checker -----------------------------------------

struct XmlNode {
  std::string name;
  std::map<std::string, std::string> attrs;  // decoded values
  std::string text;                          // decoded character data directly inside
  int parent = -1;                           // index into XmlResult::nodes
};

struct XmlResult {
  std::string error;               // empty when the document is well formed
  std::vector<std::string> texts;  // decoded character data of every text node
  std::vector<std::string> attrs;  // decoded attribute values
  std::map<std::string, int> elements;  // element name -> count
  std::vector<XmlNode> nodes;      // every element, in document order
};

inline bool xml_char_ok(char32_t c) {
  return c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) || (c >= 0xE000 && c <= 0xFFFD) ||
         (c >= 0x10000 && c <= 0x10FFFF);
}

inline XmlResult check_xml(const std::string& bytes) {
  XmlResult r;
  const auto decoded = decode_utf8(bytes);
  if (!decoded) {
    r.error = "not UTF-8";
    return r;
  }
  const std::u32string& s = *decoded;
  for (char32_t c : s) {
    if (!xml_char_ok(c)) {
      r.error = "character not allowed in XML: " + std::to_string(static_cast<uint32_t>(c));
      return r;
    }
  }
  size_t i = 0;
  auto fail = [&](const std::string& why) {
    if (r.error.empty()) r.error = why + " at character " + std::to_string(i);
  };
  auto is_name_start = [](char32_t c) { return (c >= U'a' && c <= U'z') || (c >= U'A' && c <= U'Z') || c == U'_' || c == U':'; };
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
  // Decodes a run of character data up to `stop`, checking every entity.
  auto char_data = [&](char32_t stop, bool attribute) -> std::u32string {
    std::u32string out;
    while (i < s.size() && s[i] != stop) {
      if (s[i] == U'<') {
        fail("raw '<'");
        return out;
      }
      if (!attribute && s.compare(i, 3, U"]]>") == 0) {
        fail("']]>' in text");
        return out;
      }
      if (s[i] != U'&') {
        out += s[i++];
        continue;
      }
      const size_t semi = s.find(U';', i);
      if (semi == std::u32string::npos || semi - i > 12) {
        fail("unterminated entity");
        return out;
      }
      const std::u32string ent = s.substr(i + 1, semi - i - 1);
      static const std::map<std::u32string, char32_t> named = {
          {U"amp", U'&'}, {U"lt", U'<'}, {U"gt", U'>'}, {U"quot", U'"'}, {U"apos", U'\''}};
      if (auto it = named.find(ent); it != named.end()) {
        out += it->second;
      } else if (ent.size() >= 2 && ent[0] == U'#') {
        const bool hex = ent[1] == U'x';
        const std::string digits = encode_utf8(ent.substr(hex ? 2 : 1));
        if (digits.empty() || digits.find_first_not_of(hex ? "0123456789abcdefABCDEF" : "0123456789") != std::string::npos) {
          fail("bad character reference");
          return out;
        }
        const auto cp = static_cast<char32_t>(std::strtoul(digits.c_str(), nullptr, hex ? 16 : 10));
        if (!xml_char_ok(cp)) {
          fail("character reference to a forbidden character");
          return out;
        }
        out += cp;
      } else {
        fail("unknown entity &" + encode_utf8(ent) + ";");
        return out;
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
  std::vector<int> open_nodes;
  bool seen_root = false;
  while (i < s.size() && r.error.empty()) {
    if (s[i] != U'<') {
      const std::u32string text = char_data(U'<', false);
      if (stack.empty() && text.find_first_not_of(U" \t\r\n") != std::u32string::npos) fail("text outside the root element");
      if (!stack.empty() && !text.empty()) {
        r.texts.push_back(encode_utf8(text));
        r.nodes[static_cast<size_t>(open_nodes.back())].text += encode_utf8(text);
      }
      continue;
    }
    if (s.compare(i, 4, U"<!--") == 0) {
      const size_t e = s.find(U"-->", i + 4);
      if (e == std::u32string::npos || s.substr(i + 4, e - i - 4).find(U"--") != std::u32string::npos) fail("bad comment");
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
      if (!stack.empty()) {
        stack.pop_back();
        open_nodes.pop_back();
      }
      continue;
    }
    i++;  // '<'
    if (stack.empty() && seen_root) {
      fail("a second root element");
      break;
    }
    seen_root = true;
    const std::u32string n = name();
    r.elements[encode_utf8(n)]++;
    r.nodes.push_back(XmlNode{encode_utf8(n), {}, {}, open_nodes.empty() ? -1 : open_nodes.back()});
    const int node = static_cast<int>(r.nodes.size()) - 1;
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
        open_nodes.push_back(node);
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
      r.attrs.push_back(encode_utf8(char_data(q, true)));
      r.nodes[static_cast<size_t>(node)].attrs[encode_utf8(a)] = r.attrs.back();
      if (i >= s.size()) fail("unterminated attribute value");
      i++;
    }
  }
  if (r.error.empty() && !stack.empty()) r.error = "unclosed element <" + encode_utf8(stack.back()) + ">";
  if (r.error.empty() && !seen_root) r.error = "no root element";
  return r;
}

}  // namespace microgpt::testing
