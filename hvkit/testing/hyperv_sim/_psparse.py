"""A tokenizer-level PowerShell check and the command/parameter extraction the host model validates.

Not a PowerShell parser: it tokenizes (strings, here-strings, variables, parameters, brackets, comments),
checks that quotes, here-strings and brackets balance, that no double-quoted string expands a variable
(parameters come from the JSON object only), and lists every command invocation with its named
parameters, positional argument count and whether it receives pipeline input.
"""

from __future__ import annotations

import re

import attrs

__all__ = ["Invocation", "PSParseError", "Token", "check_template", "invocations", "tokenize"]


class PSParseError(ValueError):
    """The text would not parse on Windows PowerShell (or breaks a template rule)."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"At line:{line} char:{column}: {message}")
        self.line, self.column = line, column


@attrs.frozen
class Token:
    category: str  # str, var, param, word, num, op, nl
    text: str
    line: int
    column: int
    spaced: bool  # whitespace before it


@attrs.frozen
class Invocation:
    name: str
    params: tuple[str, ...]
    positional: int
    piped: bool
    line: int


_OPEN = {"(": ")", "{": "}", "[": "]", "@(": ")", "@{": "}", "$(": ")"}
_CLOSE = {")", "}", "]"}
_VAR = re.compile(r"\$(?:\{[^}]*\}|[A-Za-z_][\w]*(?::[A-Za-z_]\w*)?|[$?^_])")
_PARAM = re.compile(r"-[A-Za-z_][\w]*:?")
_NUM = re.compile(r"0x[0-9a-fA-F]+|\d+(?:\.\d+)?(?:[kKmMgGtT][bB])?")
_WORD = re.compile(r"[A-Za-z_][\w.\\:-]*")
_OPS = [
    "-and",
    "-or",
    "-not",
    "-eq",
    "-ne",
    "-gt",
    "-ge",
    "-lt",
    "-le",
    "-like",
    "-notlike",
    "-match",
    "-notmatch",
    "-contains",
    "-notcontains",
    "-in",
    "-notin",
    "-is",
    "-isnot",
    "-as",
    "-join",
    "-split",
    "-replace",
    "-f",
    "-band",
    "-bor",
    "-ceq",
    "-cne",
    "-imatch",
]
_OPERATORS = {op.lower() for op in _OPS}
_STATEMENT_KEYWORDS = {
    "if",
    "elseif",
    "else",
    "foreach",
    "for",
    "while",
    "do",
    "try",
    "catch",
    "finally",
    "function",
    "param",
    "return",
    "throw",
    "switch",
    "break",
    "continue",
    "exit",
    "in",
    "trap",
}


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; raise PSParseError where PowerShell's parser would fail."""
    tokens: list[Token] = []
    stack: list[tuple[str, int, int]] = []
    i, line, line_start, n = 0, 1, 0, len(text)
    spaced = True

    def err(msg: str, at: int | None = None) -> PSParseError:
        at = i if at is None else at
        return PSParseError(msg, text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at))

    def add(category: str, value: str) -> None:
        nonlocal spaced
        tokens.append(Token(category, value, line, i - line_start + 1, spaced))
        spaced = False

    while i < n:
        c = text[i]
        if c in " \t\r":
            i += 1
            spaced = True
            continue
        if c == "`":  # escape / line continuation
            if i + 1 < n and text[i + 1] == "\n":
                i += 2
                line += 1
                line_start = i
                spaced = True
                continue
            i += 2
            continue
        if c == "\n":
            add("nl", "\n")
            i += 1
            line += 1
            line_start = i
            spaced = True
            continue
        if c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if text.startswith("<#", i):
            end = text.find("#>", i + 2)
            if end < 0:
                raise err("The string is missing the terminator: #>.")
            line += text.count("\n", i, end)
            i = end + 2
            continue
        if text.startswith('@"', i) or text.startswith("@'", i):
            quote = text[i + 1]
            if text[i + 2 : i + 3] not in ("\n", "\r"):
                raise err("No characters are allowed after a here-string header but before the end of the line.")
            end = text.find(f"\n{quote}@", i + 2)
            if end < 0:
                raise err(f"The string is missing the terminator: {quote}@.")
            body = text[i + 3 : end]
            if quote == '"':
                _no_expansion(body, err, i)
            add("str", body)
            line += text.count("\n", i, end + 1)
            i = end + 3
            line_start = text.rfind("\n", 0, i) + 1
            continue
        if c in "'\"":
            j = i + 1
            while True:
                if j >= n:
                    raise err(f"The string is missing the terminator: {c}.")
                if text[j] == "`" and c == '"':
                    j += 2
                    continue
                if text[j] == c:
                    if j + 1 < n and text[j + 1] == c:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            body = text[i + 1 : j]
            if c == '"':
                _no_expansion(body, err, i)
            add("str", body)
            line += body.count("\n")
            i = j + 1
            continue
        two = text[i : i + 2]
        if two in ("@(", "@{", "$("):
            stack.append((two, i, line))
            add("op", two)
            i += 2
            continue
        if c in "({[":
            stack.append((c, i, line))
            add("op", c)
            i += 1
            continue
        if c in _CLOSE:
            if not stack:
                raise err(f"Unexpected token '{c}' in expression or statement.")
            opener, _, _ = stack.pop()
            if _OPEN[opener] != c:
                raise err(f"Missing closing '{_OPEN[opener]}' in statement block or type definition.")
            add("op", c)
            i += 1
            continue
        if c == "$":
            m = _VAR.match(text, i)
            if not m:
                raise err("Variable reference is not valid.")
            add("var", m.group())
            i = m.end()
            continue
        if c == "-" and i + 1 < n and (text[i + 1].isalpha() or text[i + 1] == "_"):
            m = _PARAM.match(text, i)
            assert m is not None
            word = m.group()
            add("op" if word.lower() in _OPERATORS else "param", word)
            i = m.end()
            continue
        if c.isdigit():
            m = _NUM.match(text, i)
            assert m is not None
            add("num", m.group())
            i = m.end()
            continue
        if c.isalpha() or c == "_":
            m = _WORD.match(text, i)
            assert m is not None
            add("word", m.group())
            i = m.end()
            continue
        for op in (
            "::",
            "-=",
            "+=",
            "==",
            "||",
            "&&",
            "..",
            "|",
            ";",
            ",",
            "=",
            "+",
            "-",
            "*",
            "/",
            "%",
            "!",
            ".",
            "&",
            ">",
            "<",
            "@",
        ):
            if text.startswith(op, i):
                add("op", op)
                i += len(op)
                break
        else:
            raise err(f"Unexpected character {c!r}.")
    if stack:
        opener, at, _ = stack[-1]
        raise err(f"Missing closing '{_OPEN[opener]}' in statement block or type definition.", at)
    return tokens


def _no_expansion(body: str, err: object, at: int) -> None:
    j = 0
    while j < len(body):
        if body[j] == "`":
            j += 2
            continue
        if body[j] == "$" and j + 1 < len(body) and (body[j + 1].isalnum() or body[j + 1] in "_({"):
            raise err("a double-quoted string expands a variable; templates read parameters from the JSON object", at)  # type: ignore[operator]
        j += 1


def _is_command_name(tok: Token) -> bool:
    return tok.category == "word" and bool(re.fullmatch(r"[A-Za-z]+-[A-Za-z][A-Za-z0-9]*", tok.text))


def invocations(tokens: list[Token], switches: dict[str, set[str]]) -> list[Invocation]:
    """Every command call: its name, named parameters, positional argument count and pipeline input.

    ``switches`` names each command's switch parameters (they take no separate value).
    """
    found: list[Invocation] = []
    boundary = {"nl", ";", "|", "(", "{", "@(", "$(", "=", "&&", "||", "&"}
    for idx, tok in enumerate(tokens):
        if not _is_command_name(tok):
            continue
        prev = tokens[idx - 1] if idx else None
        at_start = prev is None or prev.category == "nl" or (prev.category == "op" and prev.text in boundary)
        if prev is not None and prev.category == "word" and prev.text.lower() in _STATEMENT_KEYWORDS:
            at_start = True
        if not at_start:
            continue
        piped = prev is not None and prev.text == "|"
        params, positional = _arguments(tokens, idx + 1, {s.lower() for s in switches.get(tok.text, set())})
        found.append(Invocation(tok.text, tuple(params), positional, piped, tok.line))
    return found


def _arguments(tokens: list[Token], start: int, switch_names: set[str]) -> tuple[list[str], int]:
    params: list[str] = []
    positional = 0
    i = start
    while i < len(tokens):
        tok = tokens[i]
        if tok.category == "nl" or (tok.category == "op" and tok.text in ("|", ";", ")", "}", "]", "&&", "||")):
            break
        if tok.category == "param":
            name = tok.text.rstrip(":")[1:]
            params.append(name)
            if tok.text.endswith(":"):  # -Force:$x
                i = _skip_value(tokens, i + 1)
                continue
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            takes_value = not any(s == name.lower() or s.startswith(name.lower()) for s in switch_names)
            ends = nxt is None or nxt.category in ("nl", "param") or (nxt.category == "op" and nxt.text in "|;)}")
            if takes_value and not ends:
                i = _skip_value(tokens, i + 1)
                continue
            i += 1
            continue
        positional += 1
        i = _skip_value(tokens, i)
    return params, positional


def _skip_value(tokens: list[Token], i: int) -> int:
    """Skip one argument value (an atom with member access, indexing and ``,`` lists); return the next index."""
    while i < len(tokens):
        i = _skip_atom(tokens, i)
        while (
            i < len(tokens)
            and not tokens[i].spaced
            and tokens[i].category == "op"
            and tokens[i].text in ("[", ".", "::")
        ):
            i = _skip_atom(tokens, i + 1) if tokens[i].text != "[" else _skip_group(tokens, i)
        if i < len(tokens) and tokens[i].category == "op" and tokens[i].text == ",":
            i += 1
            continue
        return i
    return i


def _skip_atom(tokens: list[Token], i: int) -> int:
    if i >= len(tokens):
        return i
    tok = tokens[i]
    if tok.category == "op" and tok.text in _OPEN:
        i = _skip_group(tokens, i)
        if tok.text == "[" and i < len(tokens) and not tokens[i].spaced:  # [type]::Member / [type]$x
            return _skip_atom(tokens, i + 1 if tokens[i].text == "::" else i)
        return i
    return i + 1


def _skip_group(tokens: list[Token], i: int) -> int:
    depth = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.category == "op" and tok.text in _OPEN:
            depth += 1
        elif tok.category == "op" and tok.text in _CLOSE:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


_FORBIDDEN = {"invoke-expression", "iex", "add-type"}


def check_template(text: str) -> list[Token]:
    """Tokenize a template and apply the template rules; return its tokens."""
    tokens = tokenize(text)
    for tok in tokens:
        if tok.category == "word" and tok.text.lower() in _FORBIDDEN:
            raise PSParseError(f"{tok.text} is not allowed in a template", tok.line, tok.column)
        if tok.category == "word" and tok.text.lower() == "[scriptblock]::create":
            raise PSParseError("templates do not build script blocks from text", tok.line, tok.column)
    return tokens
