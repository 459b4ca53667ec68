#pragma once
// Jinja's filters ({{ x | trim }}) and tests ({% if x is string %}) that chat templates use, with
// Jinja's semantics, and transformers' own tojson (json.dumps without HTML escaping, with indent,
// separators, sort_keys and ensure_ascii). A name not in these tables is refused when the
// template is parsed.

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "lmdecode/jinja/operations.hpp"
#include "lmdecode/jinja/python_text.hpp"
#include "lmdecode/jinja/value.hpp"

namespace lmdecode::jinja {

using Filter = Value (*)(const Value& subject, const Arguments& args);
using Test = bool (*)(const Value& subject, const Arguments& args);

Filter find_filter(const std::string& name);
Test find_test(const std::string& name);

inline size_t length(const Value& v) {
  if (v.is_undefined()) return 0;
  if (v.is_string()) return code_points(v.str()).size();
  if (v.is_list()) return v.list().items.size();
  if (v.is_dict()) return v.dict().items.size();
  throw RenderError("object of type '" + type_name(v) + "' has no len()");
}

/// An attribute path "a.b" (or an index "0") of `item`, as Jinja's attribute= arguments read it.
inline Value attribute_path(const Value& item, const std::string& path) {
  Value current = item;
  for (size_t start = 0; start <= path.size();) {
    const size_t dot = std::min(path.find('.', start), path.size());
    const std::string part = path.substr(start, dot - start);
    const bool digits = !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
    current = digits ? get_item(current, Value(static_cast<int64_t>(std::stoll(part)))) : get_item(current, Value(part));
    if (current.is_undefined()) return current;
    start = dot + 1;
  }
  return current;
}

inline std::string attribute_name(const Value& v) {
  if (!v.is_string()) throw RenderError("attribute= must be a string");
  return v.str();
}

/// select/reject/selectattr/rejectattr: keep the items whose test (or truth) is `keep`.
inline Value filter_by_test(const Value& subject, const Arguments& args, bool by_attribute, bool keep) {
  size_t next = 0;
  std::string path;
  if (by_attribute) path = attribute_name(argument(args, next++, "attribute", Value()));
  Test test = nullptr;
  Arguments test_args;
  if (next < args.positional.size()) {
    const Value& name = args.positional[next++];
    if (!name.is_string() || !(test = find_test(name.str())))
      throw RenderError("unsupported test " + to_repr(name) + " in select or reject");
    test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(next), args.positional.end());
  }
  List out;
  for (const auto& item : iterate(subject)) {
    const Value probe = by_attribute ? attribute_path(item, path) : item;
    if ((test ? test(probe, test_args) : truthy(probe)) == keep) out.items.push_back(item);
  }
  return out;
}

inline Value map_filter(const Value& subject, const Arguments& args) {
  const Value& attribute = argument(args, 99, "attribute", Value());
  List out;
  if (!attribute.is_undefined()) {
    const Value& fallback = argument(args, 99, "default", Value());
    for (const auto& item : iterate(subject)) {
      Value v = attribute_path(item, attribute_name(attribute));
      out.items.push_back(v.is_undefined() && !fallback.is_undefined() ? fallback : v);
    }
    return out;
  }
  if (args.positional.empty() || !args.positional[0].is_string()) throw RenderError("map needs a filter name or attribute=");
  const Filter filter = find_filter(args.positional[0].str());
  if (!filter) throw RenderError("unsupported filter '" + args.positional[0].str() + "' in map");
  Arguments rest{{args.positional.begin() + 1, args.positional.end()}, args.keyword};
  for (const auto& item : iterate(subject)) out.items.push_back(filter(item, rest));
  return out;
}

/// The key sort, dictsort and unique compare by: an attribute, and lower case unless case_sensitive.
inline Value sort_key(const Value& item, const std::string& path, bool case_sensitive) {
  Value key = path.empty() ? item : attribute_path(item, path);
  if (!case_sensitive && key.is_string()) return map_case(key.str(), utf8proc_tolower);
  return key;
}

inline Value sort_filter(const Value& subject, const Arguments& args) {
  const bool reverse = truthy(argument(args, 0, "reverse", false)), case_sensitive = truthy(argument(args, 1, "case_sensitive", false));
  const Value& attribute = argument(args, 2, "attribute", Value());
  const std::string path = attribute.is_undefined() || attribute.is_none() ? "" : attribute_name(attribute);
  List out{iterate(subject)};
  std::stable_sort(out.items.begin(), out.items.end(), [&](const Value& a, const Value& b) {
    const Value x = sort_key(a, path, case_sensitive), y = sort_key(b, path, case_sensitive);
    return reverse ? less(y, x) : less(x, y);
  });
  return out;
}

inline Value dictsort_filter(const Value& subject, const Arguments& args) {
  if (!subject.is_dict()) throw RenderError("dictsort needs a dict, not " + type_name(subject));
  const bool case_sensitive = truthy(argument(args, 0, "case_sensitive", false));
  const Value& by = argument(args, 1, "by", Value("key"));
  const bool reverse = truthy(argument(args, 2, "reverse", false));
  const size_t column = by.is_string() && by.str() == "value" ? 1 : 0;
  List out = dict_method(subject.dict(), "items", {}).list();
  std::stable_sort(out.items.begin(), out.items.end(), [&](const Value& a, const Value& b) {
    const Value x = sort_key(a.list().items[column], "", case_sensitive), y = sort_key(b.list().items[column], "", case_sensitive);
    return reverse ? less(y, x) : less(x, y);
  });
  return out;
}

inline Value unique_filter(const Value& subject, const Arguments& args) {
  const bool case_sensitive = truthy(argument(args, 0, "case_sensitive", false));
  const Value& attribute = argument(args, 1, "attribute", Value());
  const std::string path = attribute.is_undefined() || attribute.is_none() ? "" : attribute_name(attribute);
  List out;
  std::vector<Value> seen;
  for (const auto& item : iterate(subject)) {
    const Value key = sort_key(item, path, case_sensitive);
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equal(s, key); })) {
      seen.push_back(key);
      out.items.push_back(item);
    }
  }
  return out;
}

/// transformers' tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
inline Value tojson_filter(const Value& subject, const Arguments& args) {
  JsonStyle style;
  style.ensure_ascii = truthy(argument(args, 0, "ensure_ascii", false));
  const Value& indent = argument(args, 1, "indent", nullptr);
  if (indent.is_int()) style.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(indent.integer(), 0, 256)), ' ');
  else if (indent.is_string()) style.indent = indent.str();
  else if (!indent.is_none()) throw RenderError("tojson's indent must be an integer or a string");
  if (style.indent) style.item_separator = ",";
  const Value& separators = argument(args, 2, "separators", nullptr);
  if (separators.is_list() && separators.list().items.size() == 2 && separators.list().items[0].is_string() &&
      separators.list().items[1].is_string()) {
    style.item_separator = separators.list().items[0].str();
    style.key_separator = separators.list().items[1].str();
  } else if (!separators.is_none()) throw RenderError("tojson's separators must be two strings");
  style.sort_keys = truthy(argument(args, 3, "sort_keys", false));
  return json_dumps(subject, style);
}

inline Value indent_filter(const Value& subject, const Arguments& args) {
  const Value& width = argument(args, 0, "width", Value(4));
  const std::string pad = width.is_string() ? width.str() : std::string(static_cast<size_t>(std::clamp<int64_t>(integer_argument(width, "indent's width"), 0, 256)), ' ');
  const bool first = truthy(argument(args, 1, "first", false)), blank = truthy(argument(args, 2, "blank", false));
  const std::string text = to_str(subject);
  std::string out;
  size_t start = 0;
  for (size_t line = 0; start <= text.size(); ++line) {
    const size_t end = std::min(text.find('\n', start), text.size());
    const std::string piece = text.substr(start, end - start);
    if ((line > 0 || first) && (blank || !strip(piece, std::nullopt, true, true).empty())) append_bounded(out, pad);
    append_bounded(out, piece);
    if (end == text.size()) break;
    append_bounded(out, "\n");
    start = end + 1;
  }
  return out;
}

inline Value html_escape(const Value& subject, const Arguments&) {
  std::string out;
  for (const char c : to_str(subject)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

inline Value round_filter(const Value& subject, const Arguments& args) {
  const int64_t precision = integer_argument(argument(args, 0, "precision", Value(0)), "round's precision");
  const Value& method = argument(args, 1, "method", Value("common"));
  const double scale = std::pow(10.0, static_cast<double>(precision)), x = subject.number() * scale;
  const std::string how = method.is_string() ? method.str() : "";
  const double rounded = how == "floor" ? std::floor(x) : how == "ceil" ? std::ceil(x) : how == "common" ? std::nearbyint(x) : NAN;  // Python's round: half to even
  if (std::isnan(rounded) && !std::isnan(x)) throw RenderError("round's method must be common, ceil or floor");
  return rounded / scale;
}

/// Jinja's int() of a float: truncated; nan gives `fallback` (Python's ValueError, which the int
/// filter catches); infinity and values past 64 bits are errors (Python's OverflowError, and a
/// Python int wider than ours).
inline Value float_to_int(double f, const Value& fallback) {
  if (std::isnan(f)) return fallback;
  if (std::isinf(f)) throw RenderError("cannot convert float infinity to integer");
  if (!(std::fabs(f) < 9223372036854775808.0)) throw RenderError(fmt::format("integer overflow: {} does not fit in 64 bits", f));
  return static_cast<int64_t>(f);
}

inline Value number_filter(const Value& subject, const Arguments& args, bool to_float) {
  const Value& fallback = argument(args, 0, "default", to_float ? Value(0.0) : Value(0));
  if (subject.is_number()) return to_float ? Value(subject.number()) : subject.is_float() ? float_to_int(subject.number(), fallback) : Value(subject.integer());
  if (!subject.is_string()) return fallback;
  const std::string text = strip(subject.str(), std::nullopt, true, true);
  char* end = nullptr;
  errno = 0;
  const double f = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0') return fallback;
  if (to_float) return f;  // Python's float() gives inf or 0 past the range, as strtod does
  const bool integral = text.find_first_of(".eEnNiI") == std::string::npos;  // int("1.5") fails in Python; Jinja then tries float
  if (!integral) return float_to_int(f, fallback);
  errno = 0;
  const long long whole = std::strtoll(text.c_str(), nullptr, 10);
  if (errno == ERANGE) throw RenderError(fmt::format("integer overflow: '{}' does not fit in 64 bits", text));
  return static_cast<int64_t>(whole);
}

inline Value sum_filter(const Value& subject, const Arguments& args) {
  const Value& attribute = argument(args, 0, "attribute", Value());
  Value total = argument(args, 1, "start", Value(0));
  for (const auto& item : iterate(subject))
    total = arithmetic("+", total, attribute.is_undefined() || attribute.is_none() ? item : attribute_path(item, attribute_name(attribute)));
  return total;
}

inline Value extreme_filter(const Value& subject, bool largest) {
  const auto items = iterate(subject);
  if (items.empty()) return Value::undefined("no min or max of an empty sequence");
  Value best = items[0];
  for (const auto& item : items)
    if (largest ? less(sort_key(best, "", false), sort_key(item, "", false)) : less(sort_key(item, "", false), sort_key(best, "", false))) best = item;
  return best;
}

inline const std::vector<std::pair<std::string, Filter>>& filters() {
  static const std::vector<std::pair<std::string, Filter>> table = {
      {"trim", [](const Value& v, const Arguments& a) -> Value { return strip(to_str(v), optional_string(argument(a, 0, "chars", nullptr), "trim's chars"), true, true); }},
      {"length", [](const Value& v, const Arguments&) -> Value { return static_cast<int64_t>(length(v)); }},
      {"count", [](const Value& v, const Arguments&) -> Value { return static_cast<int64_t>(length(v)); }},
      {"tojson", tojson_filter},
      {"string", [](const Value& v, const Arguments&) -> Value { return to_str(v); }},
      {"lower", [](const Value& v, const Arguments&) -> Value { return map_case(to_str(v), utf8proc_tolower); }},
      {"upper", [](const Value& v, const Arguments&) -> Value { return map_case(to_str(v), utf8proc_toupper); }},
      {"title", [](const Value& v, const Arguments&) -> Value { return title_case(to_str(v), "-({[<"); }},
      {"capitalize", [](const Value& v, const Arguments&) -> Value { return capitalize(to_str(v)); }},
      {"replace", [](const Value& v, const Arguments& a) -> Value {
         return replace(to_str(v), to_str(argument(a, 0, "old", Value(""))), to_str(argument(a, 1, "new", Value(""))),
                        argument(a, 2, "count", nullptr).is_none() ? -1 : integer_argument(argument(a, 2, "count", nullptr), "replace's count"));
       }},
      {"join", [](const Value& v, const Arguments& a) -> Value {
         const Value& attribute = argument(a, 1, "attribute", Value());
         const std::string separator = to_str(argument(a, 0, "d", Value("")));
         std::string out;
         bool first = true;
         for (const auto& item : iterate(v)) {
           if (!first) append_bounded(out, separator);
           append_bounded(out, to_str(attribute.is_undefined() ? item : attribute_path(item, attribute_name(attribute))));
           first = false;
         }
         return out;
       }},
      {"default", [](const Value& v, const Arguments& a) -> Value {
         const bool on_false = truthy(argument(a, 1, "boolean", false));
         return v.is_undefined() || (on_false && !truthy(v)) ? argument(a, 0, "default_value", Value("")) : v;
       }},
      {"first", [](const Value& v, const Arguments&) -> Value {
         const auto items = iterate(v);
         return items.empty() ? Value::undefined("first of an empty sequence") : items.front();
       }},
      {"last", [](const Value& v, const Arguments&) -> Value {
         const auto items = iterate(v);
         return items.empty() ? Value::undefined("last of an empty sequence") : items.back();
       }},
      {"list", [](const Value& v, const Arguments&) -> Value { return List{iterate(v)}; }},
      {"reverse", [](const Value& v, const Arguments&) -> Value {
         if (v.is_string()) return slice(v, nullptr, nullptr, Value(-1));
         auto items = iterate(v);
         std::reverse(items.begin(), items.end());
         return List{std::move(items)};
       }},
      {"items", [](const Value& v, const Arguments&) -> Value {
         if (v.is_undefined()) return List{};
         if (!v.is_dict()) throw RenderError("items needs a dict, not " + type_name(v));
         return dict_method(v.dict(), "items", {});
       }},
      {"selectattr", [](const Value& v, const Arguments& a) { return filter_by_test(v, a, true, true); }},
      {"rejectattr", [](const Value& v, const Arguments& a) { return filter_by_test(v, a, true, false); }},
      {"select", [](const Value& v, const Arguments& a) { return filter_by_test(v, a, false, true); }},
      {"reject", [](const Value& v, const Arguments& a) { return filter_by_test(v, a, false, false); }},
      {"map", map_filter},
      {"sort", sort_filter},
      {"dictsort", dictsort_filter},
      {"unique", unique_filter},
      {"int", [](const Value& v, const Arguments& a) { return number_filter(v, a, false); }},
      {"float", [](const Value& v, const Arguments& a) { return number_filter(v, a, true); }},
      {"abs", [](const Value& v, const Arguments&) -> Value {
         if (v.is_float()) return std::fabs(v.number());
         if (v.is_int() || v.is_bool()) return integer_arithmetic("*", v.integer(), v.integer() < 0 ? -1 : 1);
         throw RenderError("bad operand type for abs(): '" + type_name(v) + "'");
       }},
      {"round", round_filter},
      {"sum", sum_filter},
      {"min", [](const Value& v, const Arguments&) { return extreme_filter(v, false); }},
      {"max", [](const Value& v, const Arguments&) { return extreme_filter(v, true); }},
      {"indent", indent_filter},
      {"safe", [](const Value& v, const Arguments&) { return v; }},
      {"escape", html_escape},
      {"e", html_escape},
      {"attr", [](const Value& v, const Arguments& a) { return get_attribute(v, attribute_name(argument(a, 0, "name", Value()))); }},
  };
  return table;
}

inline Filter find_filter(const std::string& name) {
  if (name == "d") return find_filter("default");
  for (const auto& [n, f] : filters())
    if (n == name) return f;
  return nullptr;
}

inline const Value& test_operand(const Arguments& args) {
  if (args.positional.empty()) throw RenderError("this test needs an argument");
  return args.positional[0];
}

inline const std::vector<std::pair<std::string, Test>>& tests() {
  static const std::vector<std::pair<std::string, Test>> table = {
      {"defined", [](const Value& v, const Arguments&) { return !v.is_undefined(); }},
      {"undefined", [](const Value& v, const Arguments&) { return v.is_undefined(); }},
      {"none", [](const Value& v, const Arguments&) { return v.is_none(); }},
      {"boolean", [](const Value& v, const Arguments&) { return v.is_bool(); }},
      {"true", [](const Value& v, const Arguments&) { return v.is_bool() && std::get<bool>(v.data); }},
      {"false", [](const Value& v, const Arguments&) { return v.is_bool() && !std::get<bool>(v.data); }},
      {"integer", [](const Value& v, const Arguments&) { return v.is_int(); }},
      {"float", [](const Value& v, const Arguments&) { return v.is_float(); }},
      {"number", [](const Value& v, const Arguments&) { return v.is_number(); }},
      {"string", [](const Value& v, const Arguments&) { return v.is_string(); }},
      {"mapping", [](const Value& v, const Arguments&) { return v.is_dict(); }},
      // Jinja's Undefined iterates (as empty) and has a length, so it is iterable and a sequence.
      {"iterable", [](const Value& v, const Arguments&) { return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined(); }},
      {"sequence", [](const Value& v, const Arguments&) { return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined(); }},
      {"callable", [](const Value& v, const Arguments&) { return v.is_callable(); }},
      {"odd", [](const Value& v, const Arguments&) { return integer_arithmetic("%", integer_argument(v, "odd's value"), 2).integer() == 1; }},
      {"even", [](const Value& v, const Arguments&) { return integer_arithmetic("%", integer_argument(v, "even's value"), 2).integer() == 0; }},
      {"divisibleby", [](const Value& v, const Arguments& a) {
         return integer_arithmetic("%", integer_argument(v, "the value"), integer_argument(test_operand(a), "divisibleby's number")).integer() == 0;
       }},
      {"eq", [](const Value& v, const Arguments& a) { return equal(v, test_operand(a)); }},
      {"ne", [](const Value& v, const Arguments& a) { return !equal(v, test_operand(a)); }},
      {"lt", [](const Value& v, const Arguments& a) { return less(v, test_operand(a)); }},
      {"gt", [](const Value& v, const Arguments& a) { return less(test_operand(a), v); }},
      {"le", [](const Value& v, const Arguments& a) { return !less(test_operand(a), v); }},
      {"ge", [](const Value& v, const Arguments& a) { return !less(v, test_operand(a)); }},
      {"in", [](const Value& v, const Arguments& a) { return contains(test_operand(a), v); }},
      {"lower", [](const Value& v, const Arguments&) { return v.is_string() && map_case(v.str(), utf8proc_tolower) == v.str(); }},
      {"upper", [](const Value& v, const Arguments&) { return v.is_string() && map_case(v.str(), utf8proc_toupper) == v.str(); }},
      {"sameas", [](const Value& v, const Arguments& a) {
         const Value& other = test_operand(a);
         return v.data.index() == other.data.index() && (v.is_none() || v.is_undefined() || equal(v, other));
       }},
  };
  return table;
}

inline Test find_test(const std::string& name) {
  static const std::pair<const char*, const char*> aliases[] = {{"equalto", "eq"}, {"==", "eq"}, {"!=", "ne"}, {"<", "lt"},
                                                                {">", "gt"}, {"<=", "le"}, {">=", "ge"}, {"greaterthan", "gt"},
                                                                {"lessthan", "lt"}};
  for (const auto& [alias, real] : aliases)
    if (name == alias) return find_test(real);
  for (const auto& [n, t] : tests())
    if (n == name) return t;
  return nullptr;
}

}  // namespace lmdecode::jinja
