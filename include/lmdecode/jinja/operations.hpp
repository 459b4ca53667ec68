#pragma once
// What Python does with template values: attribute and item access (Jinja tries the attribute,
// then the item, or the other way round for []), slicing, arithmetic, `in`, iteration, and the
// methods templates call on strings and dicts ("text".split('x'), message.get('name')).

#include <utf8proc.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "lmdecode/jinja/python_text.hpp"
#include "lmdecode/jinja/value.hpp"

namespace lmdecode::jinja {

/// Bounds on what one operation may build (a string or list repeated, a range), so that a hostile
/// template fails with an error instead of exhausting memory.
constexpr size_t kMaxBuiltBytes = size_t{1} << 26;
constexpr size_t kMaxBuiltItems = size_t{1} << 20;

/// Appends `piece` to `out` unless that builds a string over kMaxBuiltBytes.
inline void append_bounded(std::string& out, std::string_view piece) {
  if (out.size() + piece.size() > kMaxBuiltBytes) throw RenderError("a string too large to build (over 64 MiB)");
  out.append(piece);
}

inline std::string no_attribute(const Value& v, const std::string& name) {
  return "'" + type_name(v) + " object' has no attribute '" + name + "'";
}

/// A call's argument by position or keyword, else `fallback` (by value: fallbacks are often temporaries).
inline Value argument(const Arguments& args, size_t index, std::string_view keyword, const Value& fallback) {
  if (index < args.positional.size()) return args.positional[index];
  for (const auto& [k, v] : args.keyword)
    if (k == keyword) return v;
  return fallback;
}

inline std::optional<std::string> optional_string(const Value& v, const char* what) {
  if (v.is_none() || v.is_undefined()) return std::nullopt;
  if (!v.is_string()) throw RenderError(std::string(what) + " must be a string, not " + type_name(v));
  return v.str();
}

inline int64_t integer_argument(const Value& v, const char* what) {
  if (!v.is_int() && !v.is_bool()) throw RenderError(std::string(what) + " must be an integer, not " + type_name(v));
  return v.integer();
}

/// Python's code-point-wise case mapping (one code point to one; 'ß'.upper() stays 'ß').
inline std::string map_case(std::string_view text, utf8proc_int32_t (*map)(utf8proc_int32_t)) {
  std::string out;
  for (const auto& [start, end] : code_points(text)) {
    size_t length = 0;
    const int32_t cp = code_point_at(text, start, length);
    if (cp < 0) {
      out.append(text.substr(start, end - start));
      continue;
    }
    utf8proc_uint8_t buffer[4];
    out.append(reinterpret_cast<const char*>(buffer), static_cast<size_t>(utf8proc_encode_char(map(cp), buffer)));
  }
  return out;
}

inline bool is_cased(int32_t cp) { return cp >= 0 && (utf8proc_toupper(cp) != cp || utf8proc_tolower(cp) != cp); }

/// str.title (a word is a run of cased characters) or, with `after` set, Jinja's title filter
/// (words begin after whitespace and the characters in `after`).
inline std::string title_case(std::string_view text, std::string_view after = {}) {
  std::string out;
  bool at_word_start = true;
  for (const auto& [start, end] : code_points(text)) {
    size_t length = 0;
    const int32_t cp = code_point_at(text, start, length);
    const std::string_view piece = text.substr(start, end - start);
    out += map_case(piece, at_word_start ? utf8proc_toupper : utf8proc_tolower);
    if (after.empty()) at_word_start = !is_cased(cp);
    else at_word_start = is_python_space(cp) || (piece.size() == 1 && after.find(piece[0]) != std::string_view::npos);
  }
  return out;
}

inline std::string capitalize(std::string_view text) {
  const auto points = code_points(text);
  if (points.empty()) return "";
  return map_case(text.substr(0, points[0].second), utf8proc_toupper) + map_case(text.substr(points[0].second), utf8proc_tolower);
}

/// str.split on whitespace: runs of it separate, no empty parts, after max_splits the rest stays whole.
inline std::vector<std::string> split_on_whitespace(const std::string& text, int64_t max_splits) {
  std::vector<std::string> parts;
  const auto points = code_points(text);
  const auto space = [&](size_t i) {
    size_t length = 0;
    return is_python_space(code_point_at(text, points[i].first, length));
  };
  for (size_t i = 0;;) {
    while (i < points.size() && space(i)) ++i;
    if (i == points.size()) break;
    if (max_splits >= 0 && static_cast<int64_t>(parts.size()) == max_splits) {
      parts.push_back(text.substr(points[i].first));  // trailing whitespace stays, as in Python
      break;
    }
    const size_t word = i;
    while (i < points.size() && !space(i)) ++i;
    parts.push_back(text.substr(points[word].first, (i < points.size() ? points[i].first : text.size()) - points[word].first));
  }
  return parts;
}

/// str.split / str.rsplit.
inline Value split(const std::string& text, const std::optional<std::string>& separator, int64_t max_splits, bool from_right) {
  std::vector<std::string> parts;
  if (!separator) {
    parts = split_on_whitespace(text, max_splits);
  } else {
    if (separator->empty()) throw RenderError("empty separator");
    std::string rest = text;
    while (max_splits < 0 || static_cast<int64_t>(parts.size()) < max_splits) {
      const size_t hit = from_right ? rest.rfind(*separator) : rest.find(*separator);
      if (hit == std::string::npos) break;
      parts.push_back(from_right ? rest.substr(hit + separator->size()) : rest.substr(0, hit));
      rest = from_right ? rest.substr(0, hit) : rest.substr(hit + separator->size());
    }
    parts.push_back(rest);
    if (from_right) std::reverse(parts.begin(), parts.end());
  }
  List list;
  for (auto& part : parts) list.items.emplace_back(std::move(part));
  return list;
}

inline std::string replace(const std::string& text, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  size_t at = 0;
  for (size_t hit; count != 0 && !from.empty() && (hit = text.find(from, at)) != std::string::npos; --count) {
    append_bounded(out, std::string_view(text).substr(at, hit - at));
    append_bounded(out, to);
    at = hit + from.size();
  }
  append_bounded(out, std::string_view(text).substr(at));
  return out;
}

inline bool affix_matches(const std::string& text, const Value& affixes, bool at_start) {
  std::vector<Value> candidates = affixes.is_list() ? affixes.list().items : std::vector<Value>{affixes};
  for (const auto& candidate : candidates) {
    const std::string p = optional_string(candidate, "a prefix or suffix").value_or("");
    if (text.size() >= p.size() && text.compare(at_start ? 0 : text.size() - p.size(), p.size(), p) == 0) return true;
  }
  return false;
}

/// The items a for loop (or a filter) walks: a list's items, a dict's keys, a string's characters;
/// Undefined walks as empty.
inline std::vector<Value> iterate(const Value& v) {
  if (v.is_undefined()) return {};
  if (v.is_list()) return v.list().items;
  std::vector<Value> out;
  if (v.is_dict())
    for (const auto& item : v.dict().items) out.emplace_back(item.first);
  else if (v.is_string())
    for (const auto& [start, end] : code_points(v.str())) out.emplace_back(v.str().substr(start, end - start));
  else throw RenderError("'" + type_name(v) + "' object is not iterable");
  return out;
}

inline std::vector<std::string> iterate_strings(const Value& v) {
  std::vector<std::string> out;
  for (const auto& item : iterate(v)) {
    if (!item.is_string()) throw RenderError("str.join: expected str items, found " + type_name(item));
    out.push_back(item.str());
  }
  return out;
}

inline Value string_method(const std::string& text, const std::string& name, const Arguments& args) {
  const Value none = nullptr;
  if (name == "startswith" || name == "endswith") return affix_matches(text, argument(args, 0, "prefix", none), name == "startswith");
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return strip(text, optional_string(argument(args, 0, "chars", none), "strip's chars"), name != "rstrip", name != "lstrip");
  if (name == "split" || name == "rsplit")
    return split(text, optional_string(argument(args, 0, "sep", none), "split's separator"),
                 integer_argument(argument(args, 1, "maxsplit", Value(-1)), "maxsplit"), name == "rsplit");
  if (name == "lower") return map_case(text, utf8proc_tolower);
  if (name == "upper") return map_case(text, utf8proc_toupper);
  if (name == "title") return title_case(text);
  if (name == "capitalize") return capitalize(text);
  if (name == "replace")
    return replace(text, optional_string(argument(args, 0, "old", none), "replace's old").value_or(""),
                   optional_string(argument(args, 1, "new", none), "replace's new").value_or(""),
                   integer_argument(argument(args, 2, "count", Value(-1)), "replace's count"));
  if (name == "find") {
    const size_t hit = text.find(optional_string(argument(args, 0, "sub", none), "find's substring").value_or(""));
    return hit == std::string::npos ? int64_t{-1} : static_cast<int64_t>(code_points(text.substr(0, hit)).size());
  }
  if (name == "join") {
    std::string out;
    const auto items = iterate_strings(argument(args, 0, "iterable", none));
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) append_bounded(out, text);
      append_bounded(out, items[i]);
    }
    return out;
  }
  throw RenderError("unsupported string method '" + name + "'");
}

inline Value dict_method(const Dict& dict, const std::string& name, const Arguments& args) {
  if (name == "get") {
    const Value& key = argument(args, 0, "key", Value());
    const Value* found = key.is_string() ? dict.find(key.str()) : nullptr;
    return found ? *found : argument(args, 1, "default", Value(nullptr));
  }
  List list;
  for (const auto& [k, v] : dict.items) {
    if (name == "keys") list.items.emplace_back(k);
    else if (name == "values") list.items.push_back(v);
    else list.items.emplace_back(List{{Value(k), v}, true});
  }
  return list;
}

inline bool is_string_method(const std::string& name) {
  static const char* const names[] = {"startswith", "endswith", "strip", "lstrip",  "rstrip",     "split",   "rsplit",
                                      "lower",      "upper",    "title", "capitalize", "replace", "find",    "join"};
  return std::find_if(std::begin(names), std::end(names), [&](const char* n) { return name == n; }) != std::end(names);
}

/// obj.name: a method, a dict's key, a namespace's attribute, or Undefined saying what is missing.
inline Value get_attribute(const Value& v, const std::string& name) {
  fail_if_undefined(v);
  if (v.is_string() && is_string_method(name))
    return Callable{name, [text = v.str(), name](const Arguments& args) { return string_method(text, name, args); }};
  if (v.is_dict()) {
    if (name == "items" || name == "keys" || name == "values" || name == "get")
      return Callable{name, [dict = std::get<DictPtr>(v.data), name](const Arguments& args) { return dict_method(*dict, name, args); }};
    if (const Value* found = v.dict().find(name)) return *found;
  }
  if (v.is_namespace())
    if (const Value* found = v.ns().attributes.find(name)) return *found;
  return Value::undefined(no_attribute(v, name));
}

/// An index into a sequence of `size`, Python-style (negative from the end); nullopt when outside.
inline std::optional<size_t> normalize_index(int64_t index, size_t size) {
  if (index < 0) index += static_cast<int64_t>(size);
  if (index < 0 || index >= static_cast<int64_t>(size)) return std::nullopt;
  return static_cast<size_t>(index);
}

/// obj[key]: an item, else (for a string key) an attribute, else Undefined.
inline Value get_item(const Value& v, const Value& key) {
  fail_if_undefined(v);
  if (v.is_dict() && key.is_string())
    if (const Value* found = v.dict().find(key.str())) return *found;
  if ((v.is_list() || v.is_string()) && (key.is_int() || key.is_bool())) {
    if (v.is_list()) {
      if (const auto at = normalize_index(key.integer(), v.list().items.size())) return v.list().items[*at];
    } else {
      const auto points = code_points(v.str());
      if (const auto at = normalize_index(key.integer(), points.size()))
        return v.str().substr(points[*at].first, points[*at].second - points[*at].first);
    }
    return Value::undefined("'" + type_name(v) + " object' has no element " + to_str(key));
  }
  if (key.is_string()) return get_attribute(v, key.str());
  return Value::undefined("'" + type_name(v) + " object' has no element " + to_repr(key));
}

/// obj[start:stop:step] for lists and strings (code points), bounds clamped as Python clamps them.
inline Value slice(const Value& v, const Value& start, const Value& stop, const Value& step) {
  fail_if_undefined(v);
  if (!v.is_list() && !v.is_string()) throw RenderError("'" + type_name(v) + "' object is not subscriptable");
  const auto bound = [](const Value& b) -> std::optional<int64_t> {
    if (b.is_none() || b.is_undefined()) return std::nullopt;
    return integer_argument(b, "a slice index");
  };
  const int64_t by = bound(step).value_or(1);
  if (by == 0) throw RenderError("slice step cannot be zero");
  const auto points = v.is_string() ? code_points(v.str()) : std::vector<std::pair<size_t, size_t>>{};
  const auto n = static_cast<int64_t>(v.is_list() ? v.list().items.size() : points.size());
  const auto clamp = [&](std::optional<int64_t> b, int64_t fallback) {
    if (!b) return fallback;
    const int64_t i = *b < 0 ? *b + n : *b;
    return by > 0 ? std::clamp<int64_t>(i, 0, n) : std::clamp<int64_t>(i, -1, n - 1);
  };
  const int64_t from = clamp(bound(start), by > 0 ? 0 : n - 1), to = clamp(bound(stop), by > 0 ? n : -1);
  List list;
  std::string text;
  for (int64_t i = from; by > 0 ? i < to : i > to; i += by) {
    const auto at = static_cast<size_t>(i);
    if (v.is_list()) list.items.push_back(v.list().items[at]);
    else text.append(v.str(), points[at].first, points[at].second - points[at].first);
  }
  list.tuple = v.is_list() && v.list().tuple;
  return v.is_list() ? Value(std::move(list)) : Value(std::move(text));
}

inline bool contains(const Value& container, const Value& item) {
  fail_if_undefined(container);
  if (container.is_string()) {
    if (!item.is_string()) throw RenderError("'in <string>' requires string as left operand, not " + type_name(item));
    return container.str().find(item.str()) != std::string::npos;
  }
  if (container.is_dict()) return item.is_string() && container.dict().find(item.str()) != nullptr;
  for (const auto& element : iterate(container))
    if (equal(element, item)) return true;
  return false;
}

inline int64_t checked(bool overflowed, const int64_t& result) {  // by reference: read after the builtin wrote it
  if (overflowed) throw RenderError("integer overflow (template integers are 64-bit here)");
  return result;
}

inline Value repeat(const Value& sequence, int64_t times) {
  times = std::max<int64_t>(times, 0);
  const size_t unit = sequence.is_string() ? sequence.str().size() : sequence.list().items.size();
  const size_t limit = sequence.is_string() ? kMaxBuiltBytes : kMaxBuiltItems;
  if (unit != 0 && static_cast<uint64_t>(times) > limit / unit) throw RenderError("a repetition too large to build");
  if (sequence.is_string()) {
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += sequence.str();
    return out;
  }
  List out;
  for (int64_t i = 0; i < times; ++i) out.items.insert(out.items.end(), sequence.list().items.begin(), sequence.list().items.end());
  return out;
}

inline std::string concatenate(const std::string& a, const std::string& b) {
  if (a.size() + b.size() > kMaxBuiltBytes) throw RenderError("a string too large to build (over 64 MiB)");
  return a + b;
}

inline Value float_arithmetic(const std::string& op, double x, double y) {
  if (y == 0 && (op == "/" || op == "//" || op == "%")) throw RenderError("float division by zero");
  if (op == "+") return x + y;
  if (op == "-") return x - y;
  if (op == "*") return x * y;
  if (op == "/") return x / y;
  if (op == "//") return std::floor(x / y);
  if (op == "%") return x - y * std::floor(x / y);
  return std::pow(x, y);
}

inline Value integer_arithmetic(const std::string& op, int64_t x, int64_t y) {
  int64_t r = 0;
  if (op == "+") return checked(__builtin_add_overflow(x, y, &r), r);
  if (op == "-") return checked(__builtin_sub_overflow(x, y, &r), r);
  if (op == "*") return checked(__builtin_mul_overflow(x, y, &r), r);
  if (op == "//" || op == "%") {
    if (y == 0) throw RenderError("integer division or modulo by zero");
    if (x == std::numeric_limits<int64_t>::min() && y == -1) checked(true, 0);
    int64_t q = x / y, m = x % y;
    if (m != 0 && ((m < 0) != (y < 0))) --q, m += y;  // Python floors
    return op == "//" ? q : m;
  }
  if (y < 0) return std::pow(static_cast<double>(x), static_cast<double>(y));
  int64_t result = 1, base = x;
  for (int64_t e = y; e > 0;) {  // by squaring: a huge exponent takes 63 steps, not y
    if (e & 1) result = checked(__builtin_mul_overflow(result, base, &r), r);
    e >>= 1;
    if (e > 0) base = checked(__builtin_mul_overflow(base, base, &r), r);
  }
  return result;
}

/// a op b for + - * / // % **, with Python's types: str and list +, repetition by *, / always a float.
inline Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  fail_if_undefined(a);
  fail_if_undefined(b);
  if (op == "+" && a.is_string() && b.is_string()) return concatenate(a.str(), b.str());
  if (op == "+" && a.is_list() && b.is_list()) {
    if (a.list().items.size() + b.list().items.size() > kMaxBuiltItems) throw RenderError("a list too large to build");
    List out{a.list().items};
    out.items.insert(out.items.end(), b.list().items.begin(), b.list().items.end());
    return out;
  }
  if (op == "*" && (a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(a, b.integer());
  if (op == "*" && (b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(b, a.integer());
  if (op == "+" && (a.is_string() || b.is_string()))
    throw RenderError("can only concatenate str (not \"" + type_name(a.is_string() ? b : a) + "\") to str");
  if (op == "%" && a.is_string()) throw RenderError("unsupported: printf-style formatting with % on a string");
  if (!a.is_number() || !b.is_number())
    throw RenderError("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
  if (a.is_float() || b.is_float() || op == "/") return float_arithmetic(op, a.number(), b.number());
  return integer_arithmetic(op, a.integer(), b.integer());
}

}  // namespace lmdecode::jinja
