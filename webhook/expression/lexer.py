"""Tokens of expr-lang (github.com/expr-lang/expr, `parser/lexer`), the language Argo
evaluates HTTP `successCondition`s in.

Numbers: decimal, `0x`, `0o`, `0b`, `_` separators, floats (`0.5`, `.5`, `1e3`).
Strings: `"..."` and `'...'` with Go's escapes, and raw `` `...` `` strings. Comments:
`//` and `/* */`. Word operators (`and`, `or`, `not`, `in`, `matches`, `contains`,
`startsWith`, `endsWith`, `let`, `if`, `else`) are operators, as in expr.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from webhook.expression.errors import ExpressionSyntaxError


class Kind(Enum):
    NUMBER = "number"
    STRING = "string"
    BYTES = "bytes"
    IDENTIFIER = "identifier"
    OPERATOR = "operator"
    BRACKET = "bracket"
    EOF = "EOF"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    value: str
    position: int  # offset of the first character in the source

    def is_op(self, *values: str) -> bool:
        return self.kind is Kind.OPERATOR and (not values or self.value in values)

    def is_bracket(self, value: str) -> bool:
        return self.kind is Kind.BRACKET and self.value == value

    def describe(self) -> str:
        if self.kind is Kind.EOF:
            return "EOF"
        if self.kind is Kind.STRING:
            return f'String("{self.value}")'
        return f'{self.kind.value.capitalize()}("{self.value}")'


WORD_OPERATORS = frozenset(
    {"and", "or", "not", "in", "matches", "contains", "startsWith", "endsWith", "let", "if", "else"}
)
# Longest first: the lexer takes the longest operator that matches.
_SYMBOLS = (
    "**",
    "??",
    "?.",
    "..",
    "==",
    "!=",
    "<=",
    ">=",
    "&&",
    "||",
    "::",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    "<",
    ">",
    "!",
    "?",
    ":",
    ".",
    ",",
    "|",
    "#",
    ";",
    "=",
)
_BRACKETS = "()[]{}"
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
}


def tokenize(source: str) -> list[Token]:
    """All tokens of `source`, ending with an EOF token; raises ExpressionSyntaxError."""
    tokens: list[Token] = []
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char.isspace():
            i += 1
        elif source.startswith("//", i):
            end = source.find("\n", i)
            i = n if end < 0 else end
        elif source.startswith("/*", i):
            end = source.find("*/", i + 2)
            if end < 0:
                raise ExpressionSyntaxError("unclosed comment", source, i)
            i = end + 2
        elif char.isdigit() or (
            char == "." and i + 1 < n and source[i + 1].isdigit() and _value_may_start(tokens)
        ):
            i = _number(source, i, tokens)
        elif char in "\"'":
            text, i2 = _quoted(source, i)
            tokens.append(Token(Kind.STRING, text, i))
            i = i2
        elif char == "`":
            end = source.find("`", i + 1)
            if end < 0:
                raise ExpressionSyntaxError("literal not terminated", source, i)
            tokens.append(Token(Kind.STRING, source[i + 1 : end], i))
            i = end + 1
        elif char in "bB" and i + 1 < n and source[i + 1] in "\"'":
            text, i2 = _quoted(source, i + 1, as_bytes=True)
            tokens.append(Token(Kind.BYTES, text, i))
            i = i2
        elif char.isalpha() or char in "_$":
            start = i
            i += 1
            while i < n and (source[i].isalnum() or source[i] in "_$"):
                i += 1
            word = source[start:i]
            kind = Kind.OPERATOR if word in WORD_OPERATORS else Kind.IDENTIFIER
            tokens.append(Token(kind, word, start))
        elif char in _BRACKETS:
            tokens.append(Token(Kind.BRACKET, char, i))
            i += 1
        else:
            for symbol in _SYMBOLS:
                if source.startswith(symbol, i):
                    tokens.append(Token(Kind.OPERATOR, symbol, i))
                    i += len(symbol)
                    break
            else:
                raise ExpressionSyntaxError(
                    f"unrecognized character: U+{ord(char):04X} '{char}'", source, i
                )
    tokens.append(Token(Kind.EOF, "", n))
    return tokens


def _value_may_start(tokens: list[Token]) -> bool:
    """`.5` is a number only where a value can start (not after `a` or `)`: member access)."""
    if not tokens:
        return True
    last = tokens[-1]
    if last.kind in (Kind.NUMBER, Kind.STRING, Kind.BYTES, Kind.IDENTIFIER):
        return False
    return not (last.kind is Kind.BRACKET and last.value in ")]}")


def _number(source: str, i: int, tokens: list[Token]) -> int:
    start, n = i, len(source)
    if source.startswith(("0x", "0X", "0o", "0O", "0b", "0B"), i):
        i += 2
        while i < n and (source[i].isalnum() or source[i] == "_"):
            i += 1
    else:
        while i < n and (source[i].isdigit() or source[i] == "_"):
            i += 1
        # a fraction, but not the range operator `1..3`
        if i < n and source[i] == "." and not source.startswith("..", i):
            i += 1
            while i < n and (source[i].isdigit() or source[i] == "_"):
                i += 1
        if i < n and source[i] in "eE":
            j = i + 1
            if j < n and source[j] in "+-":
                j += 1
            if j < n and source[j].isdigit():
                i = j
                while i < n and source[i].isdigit():
                    i += 1
    if i < n and (source[i].isalpha() or source[i] == "_"):
        raise ExpressionSyntaxError(f"bad number syntax: {source[start : i + 1]!r}", source, start)
    tokens.append(Token(Kind.NUMBER, source[start:i], start))
    return i


def _quoted(source: str, i: int, *, as_bytes: bool = False) -> tuple[str, int]:
    """The unescaped text of the quoted literal at `i`, and the offset after it."""
    quote, start, n = source[i], i, len(source)
    i += 1
    out: list[str] = []
    while True:
        if i >= n or source[i] == "\n":
            raise ExpressionSyntaxError("literal not terminated", source, start)
        char = source[i]
        if char == quote:
            return "".join(out), i + 1
        if char != "\\":
            out.append(char)
            i += 1
            continue
        if i + 1 >= n:
            raise ExpressionSyntaxError("literal not terminated", source, start)
        escape = source[i + 1]
        if escape in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[escape])
            i += 2
        elif escape in "xuU" and not (as_bytes and escape != "x"):
            width = {"x": 2, "u": 4, "U": 8}[escape]
            digits = source[i + 2 : i + 2 + width]
            if len(digits) != width or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise ExpressionSyntaxError("invalid char escape", source, i)
            code = int(digits, 16)
            if code > 0x10FFFF:
                raise ExpressionSyntaxError(
                    "escape sequence is invalid Unicode code point", source, i
                )
            out.append(chr(code))
            i += 2 + width
        elif escape in "01234567":
            digits = source[i + 1 : i + 4]
            if len(digits) != 3 or any(c not in "01234567" for c in digits) or int(digits, 8) > 255:
                raise ExpressionSyntaxError("invalid char escape", source, i)
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise ExpressionSyntaxError("invalid char escape", source, i)
