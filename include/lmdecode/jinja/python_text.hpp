#pragma once
// Values as Python writes them, since a template's output is Python's text: str() (what {{ x }}
// prints: None, True, 1.0, a list as ['a', 1]), repr() inside containers, the shortest float repr,
// and json.dumps (transformers' tojson filter: ensure_ascii off, indent, separators, sort_keys).
// Also Python's idea of whitespace (str.strip) and code points (indexing, slicing).

#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lmdecode/jinja/value.hpp"

namespace lmdecode::jinja {

/// The code points of UTF-8 `text` as byte ranges [start, end) (an invalid byte is one point).
inline std::vector<std::pair<size_t, size_t>> code_points(std::string_view text) {
  std::vector<std::pair<size_t, size_t>> points;
  for (size_t i = 0; i < text.size();) {
    utf8proc_int32_t cp = 0;
    const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + i),
                                    static_cast<utf8proc_ssize_t>(text.size() - i), &cp);
    const size_t len = n > 0 ? static_cast<size_t>(n) : 1;
    points.emplace_back(i, i + len);
    i += len;
  }
  return points;
}

inline int32_t code_point_at(std::string_view text, size_t at, size_t& length) {
  utf8proc_int32_t cp = 0;
  const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data() + at),
                                  static_cast<utf8proc_ssize_t>(text.size() - at), &cp);
  length = n > 0 ? static_cast<size_t>(n) : 1;
  return n > 0 ? cp : -1;
}

/// Python's str.isspace for one code point.
inline bool is_python_space(int32_t cp) {
  if ((cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85) return true;
  if (cp < 0x80) return false;
  const auto category = utf8proc_category(cp);
  return category == UTF8PROC_CATEGORY_ZS || category == UTF8PROC_CATEGORY_ZL || category == UTF8PROC_CATEGORY_ZP;
}

/// str.strip / lstrip / rstrip: `chars` (code points) or, when absent, Python whitespace.
inline std::string strip(std::string_view text, const std::optional<std::string>& chars, bool left, bool right) {
  const auto stripped = [&](size_t at, size_t& length) {
    const int32_t cp = code_point_at(text, at, length);
    if (!chars) return is_python_space(cp);
    return chars->find(text.substr(at, length)) != std::string::npos;
  };
  const auto points = code_points(text);
  size_t first = 0, last = points.size(), length = 0;
  while (left && first < last && stripped(points[first].first, length)) ++first;
  while (right && last > first && stripped(points[last - 1].first, length)) --last;
  if (first == last) return "";
  return std::string(text.substr(points[first].first, points[last - 1].second - points[first].first));
}

/// Python's repr of a float: the shortest digits that read back the same, fixed notation for
/// exponents -4 to 15 (always with a fractional part), else d.ddde+XX.
inline std::string float_repr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  char buffer[40];
  int precision = 1;
  for (; precision < 17; ++precision) {
    std::snprintf(buffer, sizeof buffer, "%.*e", precision - 1, f);
    if (std::strtod(buffer, nullptr) == f) break;
  }
  std::snprintf(buffer, sizeof buffer, "%.*e", precision - 1, f);
  const std::string scientific = buffer;
  const size_t e = scientific.find('e');
  const int exponent = std::atoi(scientific.c_str() + e + 1);
  const bool negative = scientific[0] == '-';
  std::string digits;
  for (size_t i = negative ? 1 : 0; i < e; ++i)
    if (scientific[i] != '.') digits += scientific[i];
  std::string out = negative ? "-" : "";
  if (exponent < -4 || exponent >= 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char exp[16];
    std::snprintf(exp, sizeof exp, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out + exp;
  }
  if (exponent < 0) return out + "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
  const size_t integer_digits = static_cast<size_t>(exponent) + 1;
  if (digits.size() <= integer_digits) return out + digits + std::string(integer_digits - digits.size(), '0') + ".0";
  return out + digits.substr(0, integer_digits) + "." + digits.substr(integer_digits);
}

/// Python's repr of a str: single quotes unless the text holds ' and no ", the usual escapes,
/// \xNN for other control characters.
inline std::string string_repr(std::string_view s) {
  const char quote = s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos ? '"' : '\'';
  std::string out(1, quote);
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == quote || c == '\\') out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (u < 0x20 || u == 0x7F) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      out += hex;
    } else out += c;
  }
  return out + quote;
}

std::string to_repr(const Value& v);

/// Python's str(): what {{ value }} prints.
inline std::string to_str(const Value& v) {
  if (v.is_string()) return v.str();
  if (v.is_undefined()) return "";
  return to_repr(v);
}

inline std::string to_repr(const Value& v) {
  if (v.is_undefined()) return "";
  if (v.is_none()) return "None";
  if (v.is_bool()) return std::get<bool>(v.data) ? "True" : "False";
  if (v.is_int()) return std::to_string(std::get<int64_t>(v.data));
  if (v.is_float()) return float_repr(std::get<double>(v.data));
  if (v.is_string()) return string_repr(v.str());
  if (v.is_list()) {
    const auto& list = v.list();
    std::string out = list.tuple ? "(" : "[";
    for (size_t i = 0; i < list.items.size(); ++i) out += (i ? ", " : "") + to_repr(list.items[i]);
    if (list.tuple && list.items.size() == 1) out += ",";
    return out + (list.tuple ? ")" : "]");
  }
  const auto dict_repr = [](const Dict& d) {
    std::string out = "{";
    for (size_t i = 0; i < d.items.size(); ++i)
      out += (i ? ", " : "") + string_repr(d.items[i].first) + ": " + to_repr(d.items[i].second);
    return out + "}";
  };
  if (v.is_dict()) return dict_repr(v.dict());
  if (v.is_namespace()) return "<Namespace " + dict_repr(v.ns().attributes) + ">";
  return "<function " + v.callable().name + ">";
}

/// A JSON string literal as json.dumps writes it (ensure_ascii: non-ASCII as \uXXXX, surrogate pairs).
inline std::string json_string(std::string_view s, bool ensure_ascii) {
  std::string out = "\"";
  char hex[16];
  for (size_t i = 0; i < s.size();) {
    const auto u = static_cast<unsigned char>(s[i]);
    if (u >= 0x80 && ensure_ascii) {
      size_t length = 0;
      int32_t cp = code_point_at(s, i, length);
      if (cp < 0) cp = 0xFFFD;
      if (cp >= 0x10000) {
        cp -= 0x10000;
        std::snprintf(hex, sizeof hex, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
      } else std::snprintf(hex, sizeof hex, "\\u%04x", cp);
      out += hex;
      i += length;
      continue;
    }
    const char c = s[i++];
    if (c == '"') out += "\\\"";
    else if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c == '\b') out += "\\b";
    else if (c == '\f') out += "\\f";
    else if (u < 0x20) {
      std::snprintf(hex, sizeof hex, "\\u%04x", u);
      out += hex;
    } else out += c;
  }
  return out + "\"";
}

struct JsonStyle {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  ///< None: one line
  std::string item_separator = ", ", key_separator = ": ";
  bool sort_keys = false;
};

/// json.dumps(value) with `style`; what JSON cannot hold (Undefined, a namespace, a function) is
/// Python's TypeError.
inline std::string json_dumps(const Value& v, const JsonStyle& style, size_t depth = 0) {
  if (v.is_none()) return "null";
  if (v.is_bool()) return std::get<bool>(v.data) ? "true" : "false";
  if (v.is_int()) return std::to_string(std::get<int64_t>(v.data));
  if (v.is_float()) {
    const double f = std::get<double>(v.data);
    if (std::isnan(f)) return "NaN";
    if (std::isinf(f)) return f > 0 ? "Infinity" : "-Infinity";
    return float_repr(f);
  }
  if (v.is_string()) return json_string(v.str(), style.ensure_ascii);
  const auto newline = [&](size_t level) {
    std::string out = "\n";
    for (size_t i = 0; i < level; ++i) out += *style.indent;
    return out;
  };
  const auto container = [&](const auto& elements, char open, char close, const auto& write) {
    if (elements.empty()) return std::string{open, close};
    std::string out(1, open);
    for (size_t i = 0; i < elements.size(); ++i) {
      if (i) out += style.item_separator;
      if (style.indent) out += newline(depth + 1);
      out += write(elements[i]);
    }
    if (style.indent) out += newline(depth);
    return out + close;
  };
  if (v.is_list())
    return container(v.list().items, '[', ']', [&](const Value& item) { return json_dumps(item, style, depth + 1); });
  if (v.is_dict()) {
    auto items = v.dict().items;
    if (style.sort_keys) std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    return container(items, '{', '}', [&](const auto& item) {
      return json_string(item.first, style.ensure_ascii) + style.key_separator + json_dumps(item.second, style, depth + 1);
    });
  }
  throw RenderError("Object of type " + std::string(v.is_undefined() ? "Undefined" : type_name(v)) + " is not JSON serializable");
}

}  // namespace lmdecode::jinja
