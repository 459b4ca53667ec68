#pragma once
// A parsed chat template: expressions (Expr) and the statements that hold them (Node).

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "lmdecode/jinja/lexer.hpp"
#include "lmdecode/jinja/value.hpp"

namespace lmdecode::jinja {

struct Expr;
using ExprPtr = std::shared_ptr<const Expr>;

struct Expr {
  enum class Kind {
    literal,      ///< value
    name,         ///< name
    list,         ///< operands: the items (tuple: a tuple literal)
    tuple,
    dict,         ///< keywords: key expression text unused; operands alternate key, value
    attribute,    ///< operands[0].name
    subscript,    ///< operands[0][operands[1]]
    slice,        ///< operands[0][operands[1]:operands[2]:operands[3]], a missing bound is null
    call,         ///< operands[0](operands[1:], keywords)
    filter,       ///< operands[0] | name(operands[1:], keywords)
    test,         ///< operands[0] is [not] name(operands[1:])
    negate,       ///< -operands[0]
    binary,       ///< operands[0] name operands[1]: + - * / // % ** ~
    compare,      ///< operands[0] ops[0] operands[1] ops[1] operands[2] ...: == != < > <= >= in "not in"
    logical_and,
    logical_or,
    logical_not,
    conditional,  ///< operands[1] if operands[0] else operands[2] (null: undefined)
  };
  Kind kind;
  Position where;
  std::string name;
  Value value;
  bool negated = false;
  std::vector<ExprPtr> operands;
  std::vector<std::pair<std::string, ExprPtr>> keywords;
  std::vector<std::string> ops;
  size_t height = 1;  ///< levels of the tree below and including this node (parser.hpp bounds it)
};

struct Node;
using Body = std::vector<Node>;

struct Node {
  enum class Kind {
    text,       ///< text
    output,     ///< {{ expr }}
    if_chain,   ///< branches: (condition, body) for if and each elif; else_body
    for_loop,   ///< for targets in expr [if filter]: body, else_body
    set,        ///< set targets = expr, or set targets[0].attribute = expr (a namespace)
    set_block,  ///< set targets[0]: body rendered
    macro,      ///< macro name(parameters): body
    break_loop,
    continue_loop,
  };
  Node(Kind kind, Position where) : kind(kind), where(where) {}
  Kind kind;
  Position where;
  std::string text;
  ExprPtr expr, filter;
  std::vector<std::string> targets;
  std::string attribute;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, else_body;
  std::vector<std::pair<std::string, ExprPtr>> parameters;  ///< a macro's, each with its default or null
};

}  // namespace lmdecode::jinja
