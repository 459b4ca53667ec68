#pragma once
// Runs a parsed chat template over its variables, with Jinja's scoping: a for loop's body (and a
// macro's) is a scope of its own, so a `set` inside it is gone after the iteration (templates
// carry state out of loops in a namespace()); if blocks are not scopes. The globals transformers adds are
// here: raise_exception, strftime_now, and Jinja's range, namespace and dict. Errors carry the
// position of the innermost expression or statement that failed. A hostile template is bounded:
// output size, loop iterations, macro depth and the work of a render (every expression and
// statement evaluated, so that calls that fan out end too) have limits.

#include <cmath>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "lmdecode/jinja/builtins.hpp"
#include "lmdecode/jinja/operations.hpp"
#include "lmdecode/jinja/syntax_tree.hpp"

namespace lmdecode::jinja {

/// A render fault with where it happened.
class LocatedError : public std::runtime_error {
 public:
  LocatedError(const std::string& what, Position where) : std::runtime_error(what), where(where) {}
  Position where;
};

constexpr size_t kMaxOutputBytes = size_t{1} << 26;
constexpr size_t kMaxLoopIterations = 1'000'000;
constexpr size_t kMaxMacroDepth = 64;
/// Expressions and statements one render evaluates at most: a real conversation of a thousand turns
/// takes tens of thousands.
constexpr size_t kMaxRenderSteps = 1'000'000;

class Interpreter {
 public:
  explicit Interpreter(Dict variables) {
    scopes_.push_back(globals());
    scopes_.push_back(std::move(variables));
    scopes_.emplace_back();  // the template's own top level
  }

  std::string render(const Body& body) {
    std::string out;
    run(body, out);
    return out;
  }

 private:
  enum class Flow { next, break_loop, continue_loop };

  static Dict globals() {
    Dict d;
    d.items.emplace_back("raise_exception", Callable{"raise_exception", [](const Arguments& a) -> Value {
                                                       throw RenderError("the template raised an exception: " + to_str(argument(a, 0, "message", Value(""))));
                                                     }});
    d.items.emplace_back("strftime_now", Callable{"strftime_now", [](const Arguments& a) -> Value {
                                                    const auto format = optional_string(argument(a, 0, "format", Value("")), "strftime_now's format");
                                                    const std::time_t now = std::time(nullptr);
                                                    std::tm local{};
                                                    localtime_r(&now, &local);
                                                    char buffer[256];
                                                    const size_t n = std::strftime(buffer, sizeof buffer, format.value_or("").c_str(), &local);
                                                    return std::string(buffer, n);
                                                  }});
    d.items.emplace_back("range", Callable{"range", range});
    d.items.emplace_back("namespace", Callable{"namespace", [](const Arguments& a) -> Value {
                                                 auto ns = std::make_shared<Namespace>();
                                                 for (const auto& p : a.positional)
                                                   if (p.is_dict()) ns->attributes = p.dict();
                                                 for (const auto& [k, v] : a.keyword) set_entry(ns->attributes, k, v);
                                                 return ns;
                                               }});
    d.items.emplace_back("dict", Callable{"dict", [](const Arguments& a) -> Value {
                                            Dict out;
                                            for (const auto& [k, v] : a.keyword) set_entry(out, k, v);
                                            return out;
                                          }});
    return d;
  }

  static Value range(const Arguments& a) {
    std::vector<int64_t> bounds;
    for (const auto& p : a.positional) bounds.push_back(integer_argument(p, "range's argument"));
    if (bounds.empty() || bounds.size() > 3) throw RenderError("range takes 1 to 3 integers");
    const int64_t start = bounds.size() > 1 ? bounds[0] : 0, stop = bounds.size() > 1 ? bounds[1] : bounds[0],
                  step = bounds.size() > 2 ? bounds[2] : 1;
    if (step == 0) throw RenderError("range() arg 3 must not be zero");
    const long double count = std::ceil((static_cast<long double>(stop) - start) / step);
    if (count > kMaxBuiltItems) throw RenderError("a range too large to build (over a million numbers)");
    List out;
    for (int64_t k = 0; k < static_cast<int64_t>(count); ++k) out.items.emplace_back(start + k * step);
    return out;
  }

  static void set_entry(Dict& dict, const std::string& key, Value value) {
    for (auto& [k, v] : dict.items)
      if (k == key) {
        v = std::move(value);
        return;
      }
    dict.items.emplace_back(key, std::move(value));
  }

  Value lookup(const std::string& name) const {
    for (auto scope = scopes_.rbegin(); scope != scopes_.rend(); ++scope)
      if (const Value* found = scope->find(name)) return *found;
    return Value::undefined("'" + name + "' is undefined");
  }

  template <class F>
  auto located(Position where, F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const RenderError& e) {
      throw LocatedError(e.what(), where);
    }
  }

  Flow run(const Body& body, std::string& out) {
    for (const Node& node : body) {
      const Flow flow = run(node, out);
      if (flow != Flow::next) return flow;
    }
    return Flow::next;
  }

  Flow run(const Node& node, std::string& out) {
    count_step(node.where);
    switch (node.kind) {
      case Node::Kind::text: write(out, node.text, node.where); return Flow::next;
      case Node::Kind::output: write(out, located(node.where, [&] { return to_str(eval(*node.expr)); }), node.where); return Flow::next;
      case Node::Kind::if_chain:
        for (const auto& [condition, body] : node.branches)
          if (truthy(eval(*condition))) return run(body, out);
        return run(node.else_body, out);
      case Node::Kind::for_loop: return for_loop(node, out);
      case Node::Kind::set: located(node.where, [&] { assign(node, eval(*node.expr)); }); return Flow::next;
      case Node::Kind::set_block: {
        std::string captured;
        run(node.body, captured);
        assign(node, Value(std::move(captured)));
        return Flow::next;
      }
      case Node::Kind::macro: set_entry(scopes_.back(), node.text, macro(node)); return Flow::next;
      case Node::Kind::break_loop: return Flow::break_loop;
      case Node::Kind::continue_loop: return Flow::continue_loop;
    }
    return Flow::next;
  }

  static void write(std::string& out, const std::string& text, Position where) {
    if (out.size() + text.size() > kMaxOutputBytes) throw LocatedError("the rendered text grows past 64 MiB", where);
    out += text;
  }

  void bind(const std::vector<std::string>& targets, const Value& value) {
    if (targets.size() == 1) {
      set_entry(scopes_.back(), targets[0], value);
      return;
    }
    const auto items = iterate(value);
    if (items.size() != targets.size())
      throw RenderError(fmt::format("cannot unpack {} values into {} names", items.size(), targets.size()));
    for (size_t i = 0; i < targets.size(); ++i) set_entry(scopes_.back(), targets[i], items[i]);
  }

  void assign(const Node& node, const Value& value) {
    if (node.attribute.empty()) return bind(node.targets, value);
    const Value target = lookup(node.targets[0]);
    if (!target.is_namespace()) throw RenderError("cannot assign attribute on non-namespace object '" + node.targets[0] + "'");
    set_entry(target.ns().attributes, node.attribute, value);
  }

  Flow for_loop(const Node& node, std::string& out) {
    std::vector<Value> items = located(node.where, [&] { return iterate(eval(*node.expr)); });
    scopes_.emplace_back();
    if (node.filter) {
      std::vector<Value> kept;
      for (const auto& item : items) {
        located(node.where, [&] { bind(node.targets, item); });
        if (truthy(eval(*node.filter))) kept.push_back(item);
      }
      items = std::move(kept);
    }
    for (size_t i = 0; i < items.size(); ++i) {
      if (++iterations_ > kMaxLoopIterations) throw LocatedError("the template loops more than a million times", node.where);
      scopes_.back() = Dict{};  // what an iteration sets is gone in the next, as in Jinja
      located(node.where, [&] { bind(node.targets, items[i]); });
      set_entry(scopes_.back(), "loop", loop_variable(items, i));
      if (run(node.body, out) == Flow::break_loop) break;
    }
    scopes_.pop_back();
    if (items.empty()) return run(node.else_body, out);
    return Flow::next;
  }

  static Value loop_variable(const std::vector<Value>& items, size_t i) {
    const auto n = static_cast<int64_t>(items.size()), at = static_cast<int64_t>(i);
    Dict loop;
    loop.items = {{"index", at + 1}, {"index0", at}, {"revindex", n - at}, {"revindex0", n - at - 1}, {"first", i == 0},
                  {"last", at == n - 1}, {"length", n}, {"depth", 1}, {"depth0", 0},
                  {"previtem", i > 0 ? items[i - 1] : Value::undefined("there is no previous item")},
                  {"nextitem", at + 1 < n ? items[i + 1] : Value::undefined("there is no next item")}};
    loop.items.emplace_back("cycle", Callable{"cycle", [at](const Arguments& a) -> Value {
                                                if (a.positional.empty()) throw RenderError("loop.cycle needs at least one value");
                                                return a.positional[static_cast<size_t>(at) % a.positional.size()];
                                              }});
    return loop;
  }

  Value macro(const Node& node) {
    return Callable{node.text, [this, &node](const Arguments& a) -> Value {
                      if (depth_ >= kMaxMacroDepth) throw RenderError("macros call each other more than 64 deep");
                      Dict parameters;
                      for (size_t i = 0; i < node.parameters.size(); ++i) {
                        const auto& [name, fallback] = node.parameters[i];
                        Value v = argument(a, i, name, Value::undefined("macro parameter '" + name + "' was not given"));
                        if (v.is_undefined() && fallback) v = eval(*fallback);
                        parameters.items.emplace_back(name, std::move(v));
                      }
                      auto caller_scopes = std::move(scopes_);
                      scopes_ = {caller_scopes[0], caller_scopes[1], caller_scopes[2], std::move(parameters)};
                      ++depth_;
                      std::string out;
                      try {
                        run(node.body, out);
                      } catch (...) {
                        scopes_ = std::move(caller_scopes);
                        --depth_;
                        throw;
                      }
                      scopes_ = std::move(caller_scopes);
                      --depth_;
                      return out;
                    }};
  }

  Arguments arguments(const Expr& expr, size_t first) {
    Arguments args;
    for (size_t i = first; i < expr.operands.size(); ++i) args.positional.push_back(eval(*expr.operands[i]));
    for (const auto& [k, v] : expr.keywords) args.keyword.emplace_back(k, eval(*v));
    return args;
  }

  Value eval(const Expr& expr) {
    count_step(expr.where);
    return located(expr.where, [&] { return evaluate(expr); });
  }

  void count_step(Position where) {
    if (++steps_ > kMaxRenderSteps)
      throw LocatedError(fmt::format("the template takes more than {} steps (expressions and statements evaluated)", kMaxRenderSteps), where);
  }

  Value evaluate(const Expr& expr) {
    const auto operand = [&](size_t i) { return expr.operands[i] ? eval(*expr.operands[i]) : Value(nullptr); };
    switch (expr.kind) {
      case Expr::Kind::literal: return expr.value;
      case Expr::Kind::name: return lookup(expr.name);
      case Expr::Kind::list:
      case Expr::Kind::tuple: return List{arguments(expr, 0).positional, expr.kind == Expr::Kind::tuple};
      case Expr::Kind::dict: return dict_literal(expr);
      case Expr::Kind::attribute: return get_attribute(operand(0), expr.name);
      case Expr::Kind::subscript: return get_item(operand(0), operand(1));
      case Expr::Kind::slice: return slice(operand(0), operand(1), operand(2), operand(3));
      case Expr::Kind::call: return call(operand(0), arguments(expr, 1));
      case Expr::Kind::filter: return find_filter(expr.name)(operand(0), arguments(expr, 1));
      case Expr::Kind::test: return find_test(expr.name)(operand(0), arguments(expr, 1)) != expr.negated;
      case Expr::Kind::negate: return negate(operand(0));
      case Expr::Kind::binary:
        if (expr.name == "~") return concatenate(to_str(operand(0)), to_str(operand(1)));
        return arithmetic(expr.name, operand(0), operand(1));
      case Expr::Kind::compare: return compare(expr);
      case Expr::Kind::logical_and: {
        Value left = operand(0);
        return truthy(left) ? operand(1) : left;
      }
      case Expr::Kind::logical_or: {
        Value left = operand(0);
        return truthy(left) ? left : operand(1);
      }
      case Expr::Kind::logical_not: return !truthy(operand(0));
      case Expr::Kind::conditional:
        if (truthy(operand(0))) return operand(1);
        return expr.operands[2] ? operand(2) : Value::undefined("the if expression has no else");
    }
    return Value();
  }

  Value dict_literal(const Expr& expr) {
    Dict d;
    for (size_t i = 0; i + 1 < expr.operands.size(); i += 2) {
      const Value key = eval(*expr.operands[i]);
      if (!key.is_string()) throw RenderError("dict keys must be strings here, not " + type_name(key));
      set_entry(d, key.str(), eval(*expr.operands[i + 1]));
    }
    return d;
  }

  static Value call(const Value& callee, const Arguments& args) {
    fail_if_undefined(callee);
    if (!callee.is_callable()) throw RenderError("'" + type_name(callee) + "' object is not callable");
    return callee.callable().call(args);
  }

  static Value negate(const Value& v) {
    fail_if_undefined(v);
    if (v.is_float()) return -v.number();
    if (v.is_int() || v.is_bool()) return integer_arithmetic("-", 0, v.integer());
    throw RenderError("bad operand type for unary -: '" + type_name(v) + "'");
  }

  Value compare(const Expr& expr) {
    Value left = eval(*expr.operands[0]);
    for (size_t i = 0; i < expr.ops.size(); ++i) {
      Value right = eval(*expr.operands[i + 1]);
      const std::string& op = expr.ops[i];
      bool holds = false;
      if (op == "==") holds = equal(left, right);
      else if (op == "!=") holds = !equal(left, right);
      else if (op == "<") holds = less(left, right);
      else if (op == ">") holds = less(right, left);
      else if (op == "<=") holds = !less(right, left);
      else if (op == ">=") holds = !less(left, right);
      else if (op == "in") holds = contains(right, left);
      else holds = !contains(right, left);
      if (!holds) return false;
      left = std::move(right);
    }
    return true;
  }

  std::vector<Dict> scopes_;
  size_t iterations_ = 0, depth_ = 0, steps_ = 0;
};

}  // namespace lmdecode::jinja
