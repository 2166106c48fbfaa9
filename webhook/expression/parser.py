"""A Pratt parser for expr-lang, following `parser/parser.go` of expr v1.17 (the version
Argo v4 builds with): its operator precedences, unary operators binding tighter than
comparisons (`!a == b` is `(!a) == b`), `not in` / `not contains` / ..., chained
comparisons (`1 < x < 3` is `1 < x && x < 3`), ternaries, `??`, the pipe `|`, `let`,
`if {} else {}`, predicates (`all(xs, # > 1)`, `.field` inside them), slices.

Checked here, before anything runs (expr's compile step): names (only the
environment's, `$env`, and `let` variables), builtins and their argument counts,
constant regular expressions. Bounded: source length, node count (expr's default
10,000) and nesting depth, so a hostile condition is refused, never a stack overflow.
"""

from __future__ import annotations

from collections.abc import Iterable

from webhook.expression import nodes
from webhook.expression.builtins import BUILTINS, UNSUPPORTED
from webhook.expression.errors import ExpressionSyntaxError
from webhook.expression.lexer import Kind, Token, tokenize
from webhook.expression.nodes import Node
from webhook.expression.values import EvalError

MAX_SOURCE = 16_384  # characters
MAX_NODES = 10_000  # expr's conf.DefaultMaxNodes
MAX_DEPTH = 100

_UNARY = {"not": 50, "!": 50, "-": 90, "+": 90}
_BINARY: dict[str, tuple[int, bool]] = {  # precedence, right-associative
    "|": (0, False),
    "or": (10, False),
    "||": (10, False),
    "and": (15, False),
    "&&": (15, False),
    "==": (20, False),
    "!=": (20, False),
    "<": (20, False),
    ">": (20, False),
    ">=": (20, False),
    "<=": (20, False),
    "in": (20, False),
    "matches": (20, False),
    "contains": (20, False),
    "startsWith": (20, False),
    "endsWith": (20, False),
    "..": (25, False),
    "+": (30, False),
    "-": (30, False),
    "*": (60, False),
    "/": (60, False),
    "%": (60, False),
    "**": (100, True),
    "^": (100, True),
    "??": (500, False),
}
_COMPARISONS = frozenset({"<", ">", "<=", ">="})
_NEGATABLE = frozenset({"contains", "matches", "startsWith", "endsWith", "in"})


def parse(source: str, names: Iterable[str]) -> Node:
    """The tree of `source`, whose free names must be among `names`."""
    if len(source) > MAX_SOURCE:
        raise ExpressionSyntaxError(f"expression longer than {MAX_SOURCE} characters")
    if not source.strip():
        raise ExpressionSyntaxError("empty expression")
    return _Parser(source, frozenset(names)).parse()


class _Parser:
    def __init__(self, source: str, names: frozenset[str]) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.index = 0
        self.names = names
        self.variables: list[str] = []
        self.predicate_depth = 0
        self.node_count = 0
        self.nesting = 0

    # ------------------------------------------------------------ helpers

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind is not Kind.EOF:
            self.index += 1
        return token

    def error(self, message: str, token: Token | None = None) -> ExpressionSyntaxError:
        where = token or self.current
        return ExpressionSyntaxError(message, self.source, where.position)

    def unexpected(self, token: Token | None = None) -> ExpressionSyntaxError:
        token = token or self.current
        if token.kind is Kind.EOF:
            return self.error("unexpected end of expression", token)
        return self.error(f"unexpected token {token.describe()}", token)

    def expect_op(self, value: str) -> Token:
        if not self.current.is_op(value):
            raise self.unexpected()
        return self.advance()

    def expect_bracket(self, value: str) -> Token:
        if not self.current.is_bracket(value):
            raise self.unexpected()
        return self.advance()

    def make(self, node: Node, token: Token) -> Node:
        self.node_count += 1
        if self.node_count > MAX_NODES:
            raise self.error("compilation failed: expression exceeds maximum allowed nodes", token)
        node.position = token.position
        node.depth = 1 + max((child.depth for child in node.children()), default=0)
        if node.depth > MAX_DEPTH:
            raise self.error(f"expression nested deeper than {MAX_DEPTH} levels", token)
        return node

    # ------------------------------------------------------------ grammar

    def parse(self) -> Node:
        node = self.sequence()
        if self.current.kind is not Kind.EOF:
            raise self.unexpected()
        return node

    def sequence(self) -> Node:
        first = self.current
        items = [self.expression(0)]
        while self.current.is_op(";"):
            self.advance()
            if self.current.kind is Kind.EOF:
                break
            items.append(self.expression(0))
        return items[0] if len(items) == 1 else self.make(nodes.Sequence_(items), first)

    def expression(self, precedence: int) -> Node:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise self.error(f"expression nested deeper than {MAX_DEPTH} levels")
        try:
            return self._expression(precedence)
        finally:
            self.nesting -= 1

    def _expression(self, precedence: int) -> Node:
        if precedence == 0 and self.current.is_op("let"):
            return self.let()
        if precedence == 0 and self.current.is_op("if"):
            return self.if_else()
        left = self.primary()
        previous = ""
        while self.current.kind is Kind.OPERATOR:
            token = self.current
            negate = token.is_op("not")
            operator = token.value
            if negate:
                following = self.tokens[self.index + 1]
                if not (following.kind is Kind.OPERATOR and following.value in _NEGATABLE):
                    raise self.unexpected(following)
                if _BINARY[following.value][0] < precedence:
                    break
                self.advance()
                token, operator = following, following.value
            if operator not in _BINARY or _BINARY[operator][0] < precedence:
                break
            op_precedence, right_assoc = _BINARY[operator]
            self.advance()
            if operator == "|":
                name = self.current
                if name.kind is not Kind.IDENTIFIER:
                    raise self.unexpected()
                self.advance()
                left = self.call(name, [left])
                previous = operator
                continue
            if previous == "??" and operator != "??":
                raise self.error(
                    f"Operator ({operator}) and coalesce expressions (??) cannot be mixed. "
                    "Wrap either by parentheses.",
                    token,
                )
            if operator in _COMPARISONS:
                left = self.comparison(left, token, op_precedence)
            else:
                right = self.expression(op_precedence if right_assoc else op_precedence + 1)
                left = self.make(nodes.Binary(operator, left, right), token)
                if operator == "matches" and isinstance(right, nodes.Literal):
                    self.check_regex(right, token)
                if negate:
                    left = self.make(nodes.Unary("not", left), token)
            previous = operator
        if precedence == 0:
            left = self.conditional(left)
        return left

    def comparison(self, left: Node, token: Token, precedence: int) -> Node:
        root: Node | None = None
        while True:
            right = self.expression(precedence + 1)
            node = self.make(nodes.Binary(token.value, left, right), token)
            root = node if root is None else self.make(nodes.Binary("&&", root, node), token)
            left = right
            token = self.current
            if not (token.kind is Kind.OPERATOR and token.value in _COMPARISONS):
                return root
            self.advance()

    def conditional(self, node: Node) -> Node:
        while self.current.is_op("?"):
            token = self.advance()
            if self.current.is_op(":"):
                self.advance()
                then, otherwise = node, self.expression(0)
            else:
                then = self.expression(0)
                self.expect_op(":")
                otherwise = self.expression(0)
            node = self.make(nodes.Conditional(node, then, otherwise), token)
        return node

    def let(self) -> Node:
        token = self.expect_op("let")
        name = self.current
        if name.kind is not Kind.IDENTIFIER:
            raise self.unexpected()
        self.advance()
        self.expect_op("=")
        value = self.expression(0)
        self.expect_op(";")
        self.variables.append(name.value)
        try:
            body = self.sequence()
        finally:
            self.variables.pop()
        return self.make(nodes.Let(name.value, value, body), token)

    def if_else(self) -> Node:
        token = self.expect_op("if")
        condition = self.expression(0)
        self.expect_bracket("{")
        then = self.sequence()
        self.expect_bracket("}")
        self.expect_op("else")
        if self.current.is_op("if"):
            otherwise = self.if_else()
        else:
            self.expect_bracket("{")
            otherwise = self.sequence()
            self.expect_bracket("}")
        return self.make(nodes.Conditional(condition, then, otherwise), token)

    def primary(self) -> Node:
        token = self.current
        if token.kind is Kind.OPERATOR and token.value in _UNARY:
            self.advance()
            operand = self.expression(_UNARY[token.value])
            return self.postfix(self.make(nodes.Unary(token.value, operand), token))
        if token.is_bracket("("):
            self.advance()
            inner = self.sequence()
            self.expect_bracket(")")
            return self.postfix(inner)
        if self.predicate_depth > 0 and (token.is_op("#") or token.is_op(".")):
            name = ""
            if token.is_op("#"):
                self.advance()
                if self.current.kind is Kind.IDENTIFIER:
                    name = self.advance().value
                    if name not in ("index", "acc"):
                        raise self.error(f"unknown pointer #{name}", token)
            return self.postfix(self.make(nodes.Pointer(name), token))
        return self.secondary()

    def secondary(self) -> Node:
        token = self.current
        if token.kind is Kind.IDENTIFIER:
            self.advance()
            if token.value in ("true", "false"):
                return self.postfix(self.make(nodes.Literal(token.value == "true"), token))
            if token.value == "nil":
                return self.postfix(self.make(nodes.Literal(None), token))
            if self.current.is_bracket("("):
                return self.postfix(self.call(token, []))
            if (
                token.value not in self.names
                and token.value not in self.variables
                and token.value != "$env"
            ):
                raise self.error(f"unknown name {token.value}", token)
            return self.postfix(self.make(nodes.Identifier(token.value), token))
        if token.kind is Kind.NUMBER:
            self.advance()
            return self.postfix(self.make(nodes.Literal(self.number(token)), token))
        if token.kind is Kind.STRING:
            self.advance()
            return self.postfix(self.make(nodes.Literal(token.value), token))
        if token.kind is Kind.BYTES:
            self.advance()
            data = (
                token.value.encode("latin-1", "strict")
                if all(ord(c) < 256 for c in token.value)
                else token.value.encode()
            )
            return self.postfix(self.make(nodes.Literal(data), token))
        if token.is_bracket("["):
            return self.postfix(self.array())
        if token.is_bracket("{"):
            return self.postfix(self.map_literal())
        raise self.unexpected()

    def number(self, token: Token) -> int | float:
        text = token.value.replace("_", "")
        lowered = text.lower()
        try:
            if lowered.startswith(("0x", "0o", "0b")):
                value: int | float = int(text, 0)
            elif "." in lowered or "e" in lowered:
                value = float(text)
            else:
                value = int(text, 10)
        except ValueError:
            raise self.error(f"invalid number literal {token.value!r}", token) from None
        if isinstance(value, int) and value >= 2**63:
            raise self.error("integer literal is too large", token)
        if isinstance(value, float) and value == float("inf"):
            raise self.error("float literal is too large", token)
        return value

    def call(self, name: Token, arguments: list[Node]) -> Node:
        """A builtin call; `arguments` holds the left side of a pipe, if any."""
        if name.value in UNSUPPORTED:
            raise self.error(
                f"function {name.value} is not supported by plugin-guard's expression "
                "evaluator (date, bit and grouping functions are left out)",
                name,
            )
        builtin = BUILTINS.get(name.value)
        if builtin is None:
            raise self.error(f"unknown name {name.value}", name)
        self.expect_bracket("(")
        piped = len(arguments)  # the pipe's left side is not inside the parentheses
        while not self.current.is_bracket(")"):
            if len(arguments) > piped:
                self.expect_op(",")
                if self.current.is_bracket(")"):
                    break
            if builtin.predicate_at == len(arguments):
                arguments.append(self.predicate())
            else:
                arguments.append(self.expression(0))
        self.expect_bracket(")")
        if not builtin.min_args <= len(arguments) <= builtin.max_args:
            expected = (
                str(builtin.min_args)
                if builtin.min_args == builtin.max_args
                else f"{builtin.min_args} to {builtin.max_args}"
            )
            raise self.error(
                f"invalid number of arguments for {name.value} (expected {expected}, got {len(arguments)})",
                name,
            )
        return self.make(nodes.Call(name.value, builtin.function, arguments), name)

    def predicate(self) -> Node:
        start = self.current
        braces = start.is_bracket("{")
        if braces:
            self.advance()
        self.predicate_depth += 1
        try:
            body = self.sequence() if braces else self.expression(0)
        finally:
            self.predicate_depth -= 1
        if braces:
            self.expect_bracket("}")
        elif self.current.is_op(";"):
            raise self.error("wrap predicate with brackets { and }")
        return self.make(nodes.Predicate(body), start)

    def array(self) -> Node:
        token = self.expect_bracket("[")
        items: list[Node] = []
        while not self.current.is_bracket("]"):
            if items:
                self.expect_op(",")
                if self.current.is_bracket("]"):
                    break
            items.append(self.expression(0))
        self.expect_bracket("]")
        return self.make(nodes.ArrayLiteral(items), token)

    def map_literal(self) -> Node:
        token = self.expect_bracket("{")
        pairs: list[tuple[Node, Node]] = []
        while not self.current.is_bracket("}"):
            if pairs:
                self.expect_op(",")
                if self.current.is_bracket("}"):
                    break
            key_token = self.current
            if key_token.kind in (Kind.NUMBER, Kind.STRING, Kind.IDENTIFIER):
                self.advance()
                key: Node = self.make(nodes.Literal(key_token.value), key_token)
            elif key_token.is_bracket("("):
                key = self.expression(0)
            else:
                raise self.error(
                    "a map key must be a quoted string, a number, a identifier, or an "
                    f"expression enclosed in parentheses (unexpected token {key_token.describe()})"
                )
            self.expect_op(":")
            pairs.append((key, self.expression(0)))
        self.expect_bracket("}")
        return self.make(nodes.MapLiteral(pairs), token)

    def postfix(self, node: Node) -> Node:
        chained = False
        while True:
            token = self.current
            if token.is_op(".") or token.is_op("?."):
                optional = token.value == "?."
                self.advance()
                if optional and self.current.is_bracket("["):
                    node = self.index_or_slice(node, optional=True)
                    chained = True
                    continue
                name = self.current
                if name.kind not in (Kind.IDENTIFIER, Kind.OPERATOR) or not (
                    name.value[:1].isalpha() or name.value[:1] == "_"
                ):
                    raise self.error("expected name", name)
                self.advance()
                if self.current.is_bracket("("):
                    raise self.error(f"method calls are not supported ({name.value})", name)
                prop = self.make(nodes.Literal(name.value), name)
                node = self.make(nodes.Member(node, prop, optional), name)
                chained = chained or optional
            elif token.is_bracket("["):
                node = self.index_or_slice(node, optional=False)
            else:
                break
        if chained:
            node = self.make(nodes.Chain(node), self.current)
        return node

    def index_or_slice(self, node: Node, *, optional: bool) -> Node:
        token = self.expect_bracket("[")
        start: Node | None = None
        if not self.current.is_op(":"):
            start = self.expression(0)
            if not self.current.is_op(":"):
                self.expect_bracket("]")
                return self.make(nodes.Member(node, start, optional), token)
        self.advance()  # ':'
        stop = None if self.current.is_bracket("]") else self.expression(0)
        self.expect_bracket("]")
        return self.make(nodes.Slice(node, start, stop), token)

    def check_regex(self, pattern: nodes.Literal, token: Token) -> None:
        from webhook.expression import regex

        if not isinstance(pattern.value, str):
            return
        try:
            regex.check(pattern.value)
        except EvalError as exc:
            raise self.error(str(exc), token) from None
