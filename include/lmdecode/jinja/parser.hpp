#pragma once
// Builds the syntax tree of a chat template from the lexer's pieces, with Jinja's grammar and
// precedence (from loosest: "x if c else y", or, and, not, comparisons and in, + -, ~, * / // %,
// **, unary -, then postfix . [] () and filters | and tests "is"). What the interpreter cannot run
// is refused here, naming the construct and where it stands: an unknown filter, test or statement,
// include/import/extends/call blocks, recursive loops.

#include <algorithm>
#include <initializer_list>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "lmdecode/jinja/builtins.hpp"
#include "lmdecode/jinja/lexer.hpp"
#include "lmdecode/jinja/syntax_tree.hpp"

namespace lmdecode::jinja {

/// Bounds how deep a template nests (parentheses, not not ..., blocks in blocks), so that a hostile
/// one is an error rather than a stack overflow in the parser or the interpreter. Flat chains
/// (a + a + ..., x.y.z..., a|f|g...) build trees as deep as they are long: Expr::height bounds those.
class NestingGuard {
 public:
  NestingGuard(size_t& depth, Position where) : depth_(depth) {
    if (++depth_ > kMaxNesting) throw SyntaxError(fmt::format("the template nests deeper than {} levels", kMaxNesting), where);
  }
  ~NestingGuard() { --depth_; }
  NestingGuard(const NestingGuard&) = delete;
  NestingGuard& operator=(const NestingGuard&) = delete;
  static constexpr size_t kMaxNesting = 256;

 private:
  size_t& depth_;
};

/// The expression tokens of one tag.
class ExpressionParser {
 public:
  ExpressionParser(const std::vector<Token>& tokens, size_t start, Position tag) : tokens_(tokens), at_(start), tag_(tag) {}

  bool at_end() const { return at_ >= tokens_.size(); }
  Position where() const { return at_end() ? tag_ : tokens_[at_].where; }
  bool peek_op(std::string_view op) const { return !at_end() && tokens_[at_].kind == Token::Kind::op && tokens_[at_].text == op; }
  bool peek_name(std::string_view name) const {
    return !at_end() && tokens_[at_].kind == Token::Kind::name && tokens_[at_].text == name;
  }
  bool accept_op(std::string_view op) { return peek_op(op) ? (++at_, true) : false; }
  bool accept_name(std::string_view name) { return peek_name(name) ? (++at_, true) : false; }
  [[noreturn]] void fail(const std::string& what) const { throw SyntaxError(what, where()); }
  void expect_op(std::string_view op) {
    if (!accept_op(op)) fail(fmt::format("expected '{}' {}", op, found()));
  }
  std::string expect_name() {
    if (at_end() || tokens_[at_].kind != Token::Kind::name) fail("expected a name " + found());
    return tokens_[at_++].text;
  }
  void expect_end() {
    if (!at_end()) fail("unexpected " + found());
  }
  std::string found() const { return at_end() ? "at the end of the tag" : fmt::format("but found '{}'", tokens_[at_].text); }

  /// An expression, or several separated by commas as a tuple ({{ a, b }}, set a = 1, 2).
  ExprPtr tuple_or_expression() {
    const Position start = where();
    ExprPtr first = expression();
    if (!peek_op(",")) return first;
    std::vector<ExprPtr> items{first};
    while (accept_op(",") && !at_end()) items.push_back(expression());
    return make(Expr::Kind::tuple, start, std::move(items));
  }

  ExprPtr expression() {
    const NestingGuard guard(depth_, where());
    ExprPtr value = or_expression();
    while (peek_name("if")) {
      const Position at = where();
      ++at_;
      ExprPtr condition = or_expression();
      ExprPtr otherwise = accept_name("else") ? expression() : nullptr;
      value = make(Expr::Kind::conditional, at, {condition, value, otherwise});
    }
    return value;
  }

  /// An expression without a top-level "x if c else y" (a for loop's iterable, an if's condition).
  ExprPtr or_expression() { return logical_level("or", Expr::Kind::logical_or, &ExpressionParser::and_expression); }

 private:
  static std::shared_ptr<Expr> make(Expr::Kind kind, Position where, std::vector<ExprPtr> operands, std::string name = "") {
    auto expr = std::make_shared<Expr>();
    expr->kind = kind;
    expr->where = where;
    expr->operands = std::move(operands);
    expr->name = std::move(name);
    return measured(expr);
  }

  /// `expr` with its height set from its operands' (all of them read: none is added later); a tree
  /// deeper than the nesting bound is an error, since evaluating it recurses as deep.
  static std::shared_ptr<Expr> measured(std::shared_ptr<Expr> expr) {
    size_t below = 0;
    for (const auto& operand : expr->operands)
      if (operand) below = std::max(below, operand->height);
    for (const auto& keyword : expr->keywords) below = std::max(below, keyword.second->height);
    expr->height = below + 1;
    if (expr->height > NestingGuard::kMaxNesting)
      throw SyntaxError(fmt::format("the template nests deeper than {} levels", NestingGuard::kMaxNesting), expr->where);
    return expr;
  }

  ExprPtr and_expression() { return logical_level("and", Expr::Kind::logical_and, &ExpressionParser::not_expression); }

  /// Left-associative `a or b or c` (or `and`).
  ExprPtr logical_level(std::string_view keyword, Expr::Kind kind, ExprPtr (ExpressionParser::*next)()) {
    ExprPtr left = (this->*next)();
    while (peek_name(keyword)) {
      const Position at = where();
      ++at_;
      left = make(kind, at, {left, (this->*next)()});
    }
    return left;
  }

  ExprPtr not_expression() {
    const Position at = where();
    const NestingGuard guard(depth_, at);
    if (accept_name("not")) return make(Expr::Kind::logical_not, at, {not_expression()});
    return comparison();
  }

  ExprPtr comparison() {
    const Position at = where();
    ExprPtr first = sum();
    auto chain = std::make_shared<Expr>();
    chain->kind = Expr::Kind::compare;
    chain->where = at;
    chain->operands.push_back(first);
    static const char* const operators[] = {"==", "!=", "<", ">", "<=", ">="};
    while (true) {
      std::string op;
      for (const char* candidate : operators)
        if (accept_op(candidate)) op = candidate;
      if (op.empty() && accept_name("in")) op = "in";
      if (op.empty() && peek_name("not") && at_ + 1 < tokens_.size() && tokens_[at_ + 1].text == "in") {
        at_ += 2;
        op = "not in";
      }
      if (op.empty()) break;
      chain->ops.push_back(op);
      chain->operands.push_back(sum());
    }
    return chain->ops.empty() ? first : measured(chain);
  }

  template <class Next>
  ExprPtr binary_level(std::initializer_list<const char*> operators, Next next) {
    ExprPtr left = (this->*next)();
    while (true) {
      const Position at = where();
      const char* matched = nullptr;
      for (const char* op : operators)
        if (peek_op(op)) matched = op;
      if (!matched) return left;
      ++at_;
      left = make(Expr::Kind::binary, at, {left, (this->*next)()}, matched);
    }
  }
  ExprPtr sum() { return binary_level({"+", "-"}, &ExpressionParser::concatenation); }
  ExprPtr concatenation() { return binary_level({"~"}, &ExpressionParser::product); }
  ExprPtr product() { return binary_level({"*", "/", "//", "%"}, &ExpressionParser::power); }
  ExprPtr power() { return binary_level({"**"}, &ExpressionParser::unary_with_filters); }
  ExprPtr unary_with_filters() { return unary(true); }

  ExprPtr unary(bool with_filters) {
    const Position at = where();
    const NestingGuard guard(depth_, at);
    ExprPtr value;
    if (accept_op("-")) value = make(Expr::Kind::negate, at, {unary(false)});
    else if (accept_op("+")) value = unary(false);
    else value = primary();
    value = postfix(value);
    return with_filters ? filters_and_tests(value) : value;
  }

  ExprPtr primary() {
    if (at_end()) fail("expected a value at the end of the tag");
    const Token& token = tokens_[at_];
    auto literal = std::make_shared<Expr>();
    literal->kind = Expr::Kind::literal;
    literal->where = token.where;
    switch (token.kind) {
      case Token::Kind::string:
        while (!at_end() && tokens_[at_].kind == Token::Kind::string) literal->name += tokens_[at_++].text;
        literal->value = literal->name;
        return literal;
      case Token::Kind::integer: ++at_; literal->value = token.integer; return literal;
      case Token::Kind::floating: ++at_; literal->value = token.floating; return literal;
      case Token::Kind::name: {
        ++at_;
        if (token.text == "true" || token.text == "True") literal->value = true;
        else if (token.text == "false" || token.text == "False") literal->value = false;
        else if (token.text == "none" || token.text == "None") literal->value = nullptr;
        else return make(Expr::Kind::name, token.where, {}, token.text);
        return literal;
      }
      case Token::Kind::op: break;
    }
    if (accept_op("(")) {
      if (accept_op(")")) return make(Expr::Kind::tuple, token.where, {});
      ExprPtr inner = expression();
      if (!peek_op(",")) {
        expect_op(")");
        return inner;
      }
      std::vector<ExprPtr> items{inner};
      while (accept_op(",") && !peek_op(")")) items.push_back(expression());
      expect_op(")");
      return make(Expr::Kind::tuple, token.where, std::move(items));
    }
    if (accept_op("[")) {
      std::vector<ExprPtr> items;
      while (!accept_op("]")) {
        items.push_back(expression());
        if (!accept_op(",")) {
          expect_op("]");
          break;
        }
      }
      return make(Expr::Kind::list, token.where, std::move(items));
    }
    if (accept_op("{")) {
      std::vector<ExprPtr> items;
      while (!accept_op("}")) {
        items.push_back(expression());
        expect_op(":");
        items.push_back(expression());
        if (!accept_op(",")) {
          expect_op("}");
          break;
        }
      }
      return make(Expr::Kind::dict, token.where, std::move(items));
    }
    fail(fmt::format("unexpected '{}'", token.text));
  }

  ExprPtr postfix(ExprPtr value) {
    while (true) {
      const Position at = where();
      if (accept_op(".")) {
        if (!at_end() && tokens_[at_].kind == Token::Kind::integer) {
          auto index = std::make_shared<Expr>();
          index->kind = Expr::Kind::literal;
          index->where = at;
          index->value = tokens_[at_++].integer;
          value = make(Expr::Kind::subscript, at, {value, index});
        } else value = make(Expr::Kind::attribute, at, {value}, expect_name());
      } else if (accept_op("[")) value = subscript(value, at);
      else if (peek_op("(")) value = call(make(Expr::Kind::call, at, {value}));
      else return value;
    }
  }

  ExprPtr subscript(ExprPtr value, Position at) {
    ExprPtr start = peek_op(":") ? nullptr : expression();
    if (!accept_op(":")) {
      expect_op("]");
      return make(Expr::Kind::subscript, at, {value, start});
    }
    ExprPtr stop = peek_op(":") || peek_op("]") ? nullptr : expression();
    ExprPtr step;
    if (accept_op(":") && !peek_op("]")) step = expression();
    expect_op("]");
    return make(Expr::Kind::slice, at, {value, start, stop, step});
  }

  /// Reads "(positional..., name=keyword...)" into `node` after its existing operands.
  ExprPtr call(std::shared_ptr<Expr> node) {
    expect_op("(");
    while (!accept_op(")")) {
      if (!at_end() && tokens_[at_].kind == Token::Kind::name && at_ + 1 < tokens_.size() && tokens_[at_ + 1].text == "=") {
        std::string key = tokens_[at_].text;
        at_ += 2;
        node->keywords.emplace_back(std::move(key), expression());
      } else {
        if (!node->keywords.empty()) fail("a positional argument after a keyword argument");
        node->operands.push_back(expression());
      }
      if (!accept_op(",")) {
        expect_op(")");
        break;
      }
    }
    return measured(node);
  }

  ExprPtr filters_and_tests(ExprPtr value) {
    while (true) {
      const Position at = where();
      if (accept_op("|")) {
        const std::string name = expect_name();
        if (!find_filter(name)) throw SyntaxError(fmt::format("unsupported filter '{}'", name), at);
        auto node = make(Expr::Kind::filter, at, {value}, name);
        value = peek_op("(") ? call(node) : ExprPtr(node);
      } else if (accept_name("is")) {
        value = test(value, at);
      } else if (peek_op("(")) {
        value = call(make(Expr::Kind::call, at, {value}));
      } else return value;
    }
  }

  ExprPtr test(ExprPtr value, Position at) {
    const bool negated = accept_name("not");
    const std::string name = expect_name();
    if (!find_test(name)) throw SyntaxError(fmt::format("unsupported test '{}'", name), at);
    auto node = make(Expr::Kind::test, at, {value}, name);
    node->negated = negated;
    if (peek_op("(")) return call(node);
    const bool single_argument =
        !at_end() && (tokens_[at_].kind != Token::Kind::op || peek_op("(") || peek_op("[") || peek_op("{")) &&
        !peek_name("else") && !peek_name("or") && !peek_name("and") && !peek_name("if");
    if (single_argument) node->operands.push_back(postfix(primary()));
    return measured(node);
  }

  const std::vector<Token>& tokens_;
  size_t at_;
  Position tag_;
  size_t depth_ = 0;
};

/// The statements of a template.
class Parser {
 public:
  explicit Parser(std::vector<Piece> pieces) : pieces_(std::move(pieces)) {}

  Body parse() {
    Body body = parse_body({}, nullptr);
    return body;
  }

 private:
  static std::string keyword(const Piece& piece) {
    if (piece.tokens.empty() || piece.tokens[0].kind != Token::Kind::name)
      throw SyntaxError("a {% %} tag without a statement name", piece.where);
    return piece.tokens[0].text;
  }

  /// Statements until one of `ends` (its piece is stored in *ended_by) or, with no ends, the template's end.
  Body parse_body(std::initializer_list<std::string_view> ends, const Piece** ended_by) {
    const NestingGuard guard(depth_, at_ < pieces_.size() ? pieces_[at_].where : Position{});
    Body body;
    while (at_ < pieces_.size()) {
      const Piece& piece = pieces_[at_++];
      if (piece.kind == Piece::Kind::text) {
        Node node{Node::Kind::text, piece.where};
        node.text = piece.text;
        body.push_back(std::move(node));
        continue;
      }
      ExpressionParser tokens(piece.tokens, piece.kind == Piece::Kind::output ? 0 : 1, piece.where);
      if (piece.kind == Piece::Kind::output) {
        Node node{Node::Kind::output, piece.where};
        if (tokens.at_end()) throw SyntaxError("an empty {{ }}", piece.where);
        node.expr = tokens.tuple_or_expression();
        tokens.expect_end();
        body.push_back(std::move(node));
        continue;
      }
      const std::string name = keyword(piece);
      for (std::string_view end : ends)
        if (name == end) {
          *ended_by = &piece;
          return body;
        }
      body.push_back(statement(name, piece, tokens));
    }
    if (ends.size() > 0)
      throw SyntaxError(fmt::format("a block is never closed: expected {{% {} %}}", *std::prev(ends.end())),
                        pieces_.empty() ? Position{} : pieces_.back().where);
    return body;
  }

  Node statement(const std::string& name, const Piece& piece, ExpressionParser& tokens) {
    Node node{Node::Kind::text, piece.where};
    if (name == "if") return if_chain(node, tokens);
    if (name == "for") return for_loop(node, tokens);
    if (name == "set") return set(node, tokens);
    if (name == "macro") return macro(node, tokens);
    if (name == "break" || name == "continue") {
      tokens.expect_end();
      node.kind = name == "break" ? Node::Kind::break_loop : Node::Kind::continue_loop;
      return node;
    }
    if (name == "generation") {  // transformers' assistant-mask marker: renders its body as is
      tokens.expect_end();
      const Piece* end = nullptr;
      node.kind = Node::Kind::if_chain;
      auto always = std::make_shared<Expr>();
      always->kind = Expr::Kind::literal;
      always->value = true;
      node.branches.emplace_back(always, parse_body({"endgeneration"}, &end));
      return node;
    }
    static const char* const closers[] = {"endif", "elif", "else", "endfor", "endset", "endmacro", "endgeneration", "endraw"};
    for (const char* closer : closers)
      if (name == closer) throw SyntaxError(fmt::format("{{% {} %}} without its opening statement", name), piece.where);
    throw SyntaxError(fmt::format("unsupported statement '{{% {} %}}'", name), piece.where);
  }

  Node if_chain(Node& node, ExpressionParser& tokens) {
    node.kind = Node::Kind::if_chain;
    ExprPtr condition = tokens.or_expression();
    tokens.expect_end();
    while (true) {
      const Piece* end = nullptr;
      Body body = parse_body({"elif", "else", "endif"}, &end);
      node.branches.emplace_back(condition, std::move(body));
      ExpressionParser next(end->tokens, 1, end->where);
      const std::string closer = end->tokens[0].text;
      if (closer == "endif") {
        next.expect_end();
        return std::move(node);
      }
      if (closer == "else") {
        next.expect_end();
        node.else_body = parse_body({"endif"}, &end);
        ExpressionParser(end->tokens, 1, end->where).expect_end();
        return std::move(node);
      }
      condition = next.or_expression();
      next.expect_end();
    }
  }

  Node for_loop(Node& node, ExpressionParser& tokens) {
    node.kind = Node::Kind::for_loop;
    node.targets.push_back(tokens.expect_name());
    while (tokens.accept_op(",")) node.targets.push_back(tokens.expect_name());
    if (!tokens.accept_name("in")) tokens.fail("expected 'in' in a for loop " + tokens.found());
    node.expr = tokens.or_expression();
    if (tokens.accept_name("if")) node.filter = tokens.or_expression();
    if (tokens.peek_name("recursive")) tokens.fail("unsupported recursive for loop");
    tokens.expect_end();
    const Piece* end = nullptr;
    node.body = parse_body({"else", "endfor"}, &end);
    if (end->tokens[0].text == "else") node.else_body = parse_body({"endfor"}, &end);
    return std::move(node);
  }

  Node set(Node& node, ExpressionParser& tokens) {
    node.kind = Node::Kind::set;
    node.targets.push_back(tokens.expect_name());
    if (tokens.accept_op(".")) node.attribute = tokens.expect_name();
    while (node.attribute.empty() && tokens.accept_op(",")) node.targets.push_back(tokens.expect_name());
    if (tokens.at_end() && node.targets.size() == 1 && node.attribute.empty()) {
      node.kind = Node::Kind::set_block;
      const Piece* end = nullptr;
      node.body = parse_body({"endset"}, &end);
      return std::move(node);
    }
    tokens.expect_op("=");
    node.expr = tokens.tuple_or_expression();
    tokens.expect_end();
    return std::move(node);
  }

  Node macro(Node& node, ExpressionParser& tokens) {
    node.kind = Node::Kind::macro;
    node.text = tokens.expect_name();
    tokens.expect_op("(");
    while (!tokens.accept_op(")")) {
      std::string parameter = tokens.expect_name();
      ExprPtr fallback = tokens.accept_op("=") ? tokens.expression() : nullptr;
      node.parameters.emplace_back(std::move(parameter), fallback);
      if (!tokens.accept_op(",")) {
        tokens.expect_op(")");
        break;
      }
    }
    tokens.expect_end();
    const Piece* end = nullptr;
    node.body = parse_body({"endmacro"}, &end);
    return std::move(node);
  }

  std::vector<Piece> pieces_;
  size_t at_ = 0, depth_ = 0;
};

}  // namespace lmdecode::jinja
