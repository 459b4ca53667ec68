#pragma once
// The values a chat template computes with, as Python (where transformers runs Jinja) sees them:
// undefined, None, bool, int, float, str, list and tuple, dict (in insertion order, as Python's),
// a namespace (the one mutable object a sandboxed template has) and callables (globals, macros,
// bound methods such as "text".split). Lists and dicts are immutable and shared.

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace lmdecode::jinja {

/// A fault while rendering; the interpreter adds where in the template it happened.
class RenderError : public std::runtime_error {
 public:
  explicit RenderError(const std::string& what) : std::runtime_error(what) {}
};

struct Value;
struct List {
  std::vector<Value> items;
  bool tuple = false;  ///< prints as (a, b) and stays a tuple, as Python's dict.items() pairs
};
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(std::string_view key) const;
};
struct Namespace {
  Dict attributes;
};
struct Arguments {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};
struct Callable {
  std::string name;
  std::function<Value(const Arguments&)> call;
};
/// Jinja's Undefined: prints as "", is false, iterates as empty; `hint` says why it is undefined
/// for the error when a template uses it further ("'x' is undefined").
struct Undefined {
  std::string hint;
};

using ListPtr = std::shared_ptr<const List>;
using DictPtr = std::shared_ptr<const Dict>;

struct Value {
  std::variant<Undefined, std::nullptr_t, bool, int64_t, double, std::string, ListPtr, DictPtr,
               std::shared_ptr<Namespace>, std::shared_ptr<const Callable>>
      data;

  Value() : data(Undefined{}) {}
  Value(std::nullptr_t) : data(nullptr) {}
  Value(bool b) : data(b) {}
  Value(int64_t i) : data(i) {}
  Value(int i) : data(static_cast<int64_t>(i)) {}
  Value(double f) : data(f) {}
  Value(std::string s) : data(std::move(s)) {}
  Value(const char* s) : data(std::string(s)) {}
  Value(List list) : data(std::make_shared<const List>(std::move(list))) {}
  Value(Dict dict) : data(std::make_shared<const Dict>(std::move(dict))) {}
  Value(std::shared_ptr<Namespace> ns) : data(std::move(ns)) {}
  Value(Callable fn) : data(std::make_shared<const Callable>(std::move(fn))) {}
  static Value undefined(std::string hint) { Value v; v.data = Undefined{std::move(hint)}; return v; }

  bool is_undefined() const { return std::holds_alternative<Undefined>(data); }
  bool is_none() const { return std::holds_alternative<std::nullptr_t>(data); }
  bool is_bool() const { return std::holds_alternative<bool>(data); }
  bool is_int() const { return std::holds_alternative<int64_t>(data); }  ///< a bool is not an int here
  bool is_float() const { return std::holds_alternative<double>(data); }
  bool is_number() const { return is_int() || is_float() || is_bool(); }  ///< Python: bool is an int
  bool is_string() const { return std::holds_alternative<std::string>(data); }
  bool is_list() const { return std::holds_alternative<ListPtr>(data); }
  bool is_dict() const { return std::holds_alternative<DictPtr>(data); }
  bool is_namespace() const { return std::holds_alternative<std::shared_ptr<Namespace>>(data); }
  bool is_callable() const { return std::holds_alternative<std::shared_ptr<const Callable>>(data); }

  // The accessors check the kind: a value of another kind is a RenderError, never a crash.
  const std::string& str() const { return get<std::string>("a string"); }
  const List& list() const { return *get<ListPtr>("a list"); }
  const Dict& dict() const { return *get<DictPtr>("a dict"); }
  Namespace& ns() const { return *get<std::shared_ptr<Namespace>>("a namespace"); }
  const Callable& callable() const { return *get<std::shared_ptr<const Callable>>("a function"); }
  const std::string& undefined_hint() const { return get<Undefined>("undefined").hint; }
  /// An int, a bool (as 0 or 1) or a float, as a double.
  double number() const;
  /// An int or a bool as int64.
  int64_t integer() const { return is_bool() ? std::get<bool>(data) : get<int64_t>("an integer"); }

 private:
  template <class T>
  const T& get(const char* expected) const;
};

inline const Value* Dict::find(std::string_view key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

/// Python's type name ("str", "list", ...), for errors.
inline std::string type_name(const Value& v) {
  static const char* const names[] = {"undefined", "NoneType", "bool", "int", "float", "str", "list", "dict", "Namespace",
                                      "function"};
  if (v.is_list() && v.list().tuple) return "tuple";
  return names[v.data.index()];
}

template <class T>
const T& Value::get(const char* expected) const {
  if (const T* value = std::get_if<T>(&data)) return *value;
  throw RenderError(std::string("expected ") + expected + ", not " + (is_undefined() ? "an undefined value" : type_name(*this)));
}

inline double Value::number() const {
  if (is_float()) return std::get<double>(data);
  if (!is_int() && !is_bool()) throw RenderError("expected a number, not " + (is_undefined() ? std::string("an undefined value") : type_name(*this)));
  return static_cast<double>(integer());
}

/// Undefined values fail loudly where Jinja's do: attribute access, arithmetic, calls.
inline void fail_if_undefined(const Value& v) {
  if (v.is_undefined()) throw RenderError(v.undefined_hint().empty() ? "a value is undefined" : v.undefined_hint());
}

/// Python's truth value.
inline bool truthy(const Value& v) {
  if (v.is_undefined() || v.is_none()) return false;
  if (v.is_bool()) return std::get<bool>(v.data);
  if (v.is_int()) return std::get<int64_t>(v.data) != 0;
  if (v.is_float()) return std::get<double>(v.data) != 0.0;
  if (v.is_string()) return !v.str().empty();
  if (v.is_list()) return !v.list().items.empty();
  if (v.is_dict()) return !v.dict().items.empty();
  return true;
}

/// Python's ==: numbers by value (True == 1), containers element by element, Undefined equal only to
/// Undefined, everything else by identity of kind and content.
inline bool equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.number() == b.number();
    return a.integer() == b.integer();
  }
  if (a.data.index() != b.data.index()) return false;
  if (a.is_undefined() || a.is_none()) return true;
  if (a.is_string()) return a.str() == b.str();
  if (a.is_list()) {
    const auto &x = a.list().items, &y = b.list().items;
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i)
      if (!equal(x[i], y[i])) return false;
    return true;
  }
  if (a.is_dict()) {
    const auto &x = a.dict(), &y = b.dict();
    if (x.items.size() != y.items.size()) return false;
    for (const auto& [k, v] : x.items) {
      const Value* other = y.find(k);
      if (!other || !equal(v, *other)) return false;
    }
    return true;
  }
  if (a.is_namespace()) return &a.ns() == &b.ns();
  return &a.callable() == &b.callable();
}

/// Python's < for numbers, strings (code point order, which UTF-8 byte order keeps) and lists;
/// other pairs are the TypeError Python raises.
inline bool less(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.number() < b.number();
    return a.integer() < b.integer();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();
  if (a.is_list() && b.is_list()) {
    const auto &x = a.list().items, &y = b.list().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (!equal(x[i], y[i])) return less(x[i], y[i]);
    return x.size() < y.size();
  }
  fail_if_undefined(a);
  fail_if_undefined(b);
  throw RenderError("'<' not supported between instances of '" + type_name(a) + "' and '" + type_name(b) + "'");
}

}  // namespace lmdecode::jinja
