"""Compile an IoT SQL parse tree once into nested Python closures.

Each expression becomes ``fn(env) -> value``; constant sub-expressions are folded at compile
time and regexes with literal patterns are compiled once, so evaluating a rule costs one JSON
parse plus a handful of Python calls.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from lark import Token, Tree

from ..topics import InvalidTopic, levels_match, validate_topic_filter
from . import types as T
from .functions import CAST_TYPES, CAST_TYPES_V2_ONLY, FUNCTIONS, IMPURE, Env, cast_value
from .model import DEFAULT_CONTEXT, SqlContext, SqlError, SqlMessage
from .parser import parse_expression, parse_statement
from .types import UNDEFINED, V1, V2, VERSIONS, whole_to_int

Closure = Callable[[Env], Any]
_NOCONST = object()
_KEYWORDS = frozenset(
    {"SET", "SELECT", "VALUE", "FROM", "WHERE", "AS", "AND", "OR", "NOT", "CASE", "WHEN",
     "THEN", "ELSE", "END", "CAST", "IN", "CONTAINS"}
)  # fmt: skip
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "\\": "\\", "'": "'",
            '"': '"', "/": "/"}  # fmt: skip
_ESCAPE_RE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.S)


def _unescape(text: str) -> str:
    """A quoted literal's value: JSON-style escapes; unknown escapes (regex ``\\d``) kept."""
    body = text[1:-1]
    if "\\" not in body:
        return body

    def sub(m: re.Match[str]) -> str:
        e = m.group(1)
        if len(e) == 5:
            return chr(int(e[1:], 16))
        return _ESCAPES.get(e, "\\" + e)

    return _ESCAPE_RE.sub(sub, body)


def _pos(node: Tree | Token) -> tuple[int | None, int | None]:
    if isinstance(node, Token):
        return node.line, node.column
    meta = node.meta
    return getattr(meta, "line", None), getattr(meta, "column", None)


def _token(child: Tree | Token | None) -> Token:
    """A child the grammar makes a terminal, narrowed from lark's ``Tree | Token``."""
    if not isinstance(child, Token):  # pragma: no cover - the grammar and compiler disagree
        raise SqlError(f"expected a token, got {child!r}")
    return child


def _text(node: Tree, index: int = 0) -> str:
    """The text of the terminal at ``node.children[index]``."""
    return str(_token(node.children[index]).value)


def _const(value: Any) -> Closure:
    return lambda env: value


def _is_true(v: Any) -> bool:
    return v is True or (type(v) is str and v.lower() == "true")


class _Compiler:
    def __init__(self, version: str, text: str) -> None:
        self.v2 = version == V2
        self.version = version
        self.text = text
        self.functions: set[str] = set()
        self.fields: set[str] = set()  # payload keys named bare (`text`, the `a` of `a.b`)
        self.lambda_arns: list[str] = []
        self.tables: list[str] = []
        self.dynamodb_calls = 0

    # -- helpers ------------------------------------------------------------------------------

    def _need_v2(self, what: str, node: Tree | Token) -> None:
        if not self.v2:
            line, col = _pos(node)
            raise SqlError(f"{what} requires SQL version {V2}", line, col)

    def _num(self, v: Any) -> Any:
        return whole_to_int(v) if self.v2 else v

    def _source(self, node: Tree) -> str:
        meta = node.meta
        start = getattr(meta, "start_pos", None)
        end = getattr(meta, "end_pos", None)
        if start is None or end is None:
            return "expr"
        return self.text[start:end]

    def expr(self, node: Tree) -> Closure:
        return self.compile(node)[0]

    def compile(self, node: Tree) -> tuple[Closure, Any]:
        """(closure, constant value or _NOCONST)."""
        method = getattr(self, "c_" + node.data, None)
        if method is None:  # pragma: no cover - the grammar and compiler disagree
            raise SqlError(f"unsupported construct {node.data!r}", *_pos(node))
        return method(node)

    def _fold(self, fn: Closure, parts: list[Any]) -> tuple[Closure, Any]:
        if all(c is not _NOCONST for c in parts):
            value = fn(_CONST_ENV_V2 if self.v2 else _CONST_ENV)
            return _const(value), value
        return fn, _NOCONST

    # -- literals and names -------------------------------------------------------------------

    def c_string(self, node: Tree) -> tuple[Closure, Any]:
        value = _unescape(_text(node))
        return _const(value), value

    def c_number(self, node: Tree) -> tuple[Closure, Any]:
        text = _text(node)
        if text.isdigit() and len(text) <= 34:
            value: Any = int(text)
        else:
            value = self._num(Decimal(text))
        return _const(value), value

    def c_true(self, node: Tree) -> tuple[Closure, Any]:
        return _const(True), True

    def c_false(self, node: Tree) -> tuple[Closure, Any]:
        return _const(False), False

    def c_null(self, node: Tree) -> tuple[Closure, Any]:
        return _const(None), None

    def c_field(self, node: Tree) -> tuple[Closure, Any]:
        name = _text(node)
        self.fields.add(name)

        def field(env: Env) -> Any:
            root = env.root
            if type(root) is dict:
                return root.get(name, UNDEFINED)
            return UNDEFINED

        return field, _NOCONST

    def c_var(self, node: Tree) -> tuple[Closure, Any]:
        name = _text(node)[1:]
        return (lambda env: env.vars.get(name, UNDEFINED)), _NOCONST

    def c_attr(self, node: Tree) -> tuple[Closure, Any]:
        base_node = node.children[0]
        name = _text(node, 1)
        # a.b.c with a plain field at the root: one closure walking the path.
        path = [name]
        inner = base_node
        while isinstance(inner, Tree) and inner.data == "attr":
            path.append(_text(inner, 1))
            inner = inner.children[0]
        if isinstance(inner, Tree) and inner.data == "field":
            keys = tuple([_text(inner), *reversed(path)])
            self.fields.add(keys[0])

            def walk(env: Env) -> Any:
                cur = env.root
                for k in keys:
                    if type(cur) is not dict:
                        return UNDEFINED
                    cur = cur.get(k, UNDEFINED)
                return cur

            return walk, _NOCONST
        base, const = self.compile(base_node)

        def attr(env: Env) -> Any:
            v = base(env)
            if type(v) is dict:
                return v.get(name, UNDEFINED)
            return UNDEFINED

        return self._fold(attr, [const])

    def c_index(self, node: Tree) -> tuple[Closure, Any]:
        base, bc = self.compile(node.children[0])
        idx, ic = self.compile(node.children[1])

        def index(env: Env) -> Any:
            v = base(env)
            k = idx(env)
            t = type(v)
            if t is list:
                i = T.floor_int(k)
                if i is UNDEFINED or i < 0 or i >= len(v):
                    return UNDEFINED
                return v[i]
            if t is dict and type(k) is str:
                return v.get(k, UNDEFINED)
            return UNDEFINED

        return self._fold(index, [bc, ic])

    # -- operators ----------------------------------------------------------------------------

    def _binary(self, node: Tree, op: Callable[[Any, Any], Any]) -> tuple[Closure, Any]:
        (left, lc), (right, rc) = (self.compile(c) for c in node.children if isinstance(c, Tree))
        if self.v2:

            def fn(env: Env) -> Any:
                r = op(left(env), right(env))
                return whole_to_int(r) if type(r) is Decimal else r
        else:

            def fn(env: Env) -> Any:
                return op(left(env), right(env))

        return self._fold(fn, [lc, rc])

    def c_add_op(self, node: Tree) -> tuple[Closure, Any]:
        return self._binary(node, T.add)

    def c_sub_op(self, node: Tree) -> tuple[Closure, Any]:
        return self._binary(node, T.subtract)

    def c_mul_op(self, node: Tree) -> tuple[Closure, Any]:
        return self._binary(node, T.multiply)

    def c_div_op(self, node: Tree) -> tuple[Closure, Any]:
        return self._binary(node, T.divide)

    def c_mod_op(self, node: Tree) -> tuple[Closure, Any]:
        return self._binary(node, T.modulo)

    def c_neg_op(self, node: Tree) -> tuple[Closure, Any]:
        inner, const = self.compile(node.children[0])
        return self._fold(lambda env: T.negate(inner(env)), [const])

    def c_and_op(self, node: Tree) -> tuple[Closure, Any]:
        return self._logical(node, conjunction=True)

    def c_or_op(self, node: Tree) -> tuple[Closure, Any]:
        return self._logical(node, conjunction=False)

    def _logical(self, node: Tree, conjunction: bool) -> tuple[Closure, Any]:
        """AND / OR: both sides evaluated as Booleans; Undefined when either side is."""
        left, right = (self.expr(c) for c in node.children if isinstance(c, Tree))
        to_bool = T.to_bool

        def logical(env: Env) -> Any:
            a = to_bool(left(env))
            b = to_bool(right(env))
            if a is UNDEFINED or b is UNDEFINED:
                return UNDEFINED
            return (a and b) if conjunction else (a or b)

        return logical, _NOCONST

    def c_not_op(self, node: Tree) -> tuple[Closure, Any]:
        inner, const = self.compile(node.children[-1])

        def not_(env: Env) -> Any:
            v = T.to_bool(inner(env))
            return UNDEFINED if v is UNDEFINED else not v

        return self._fold(not_, [const])

    def c_cmp_op(self, node: Tree) -> tuple[Closure, Any]:
        left_node, _, right_node = node.children
        op = _text(node, 1)
        left, lc = self.compile(left_node)
        right, rc = self.compile(right_node)
        if op in ("=", "<>", "!="):
            eq = op == "="
            if rc is not _NOCONST and type(rc) is str and lc is _NOCONST:
                # field = 'literal', the commonest WHERE test: no generic dispatch.
                def eq_str(env: Env) -> Any:
                    v = left(env)
                    if v is UNDEFINED:
                        return UNDEFINED
                    return (type(v) is str and v == rc) is eq

                return eq_str, _NOCONST
            test = T.equals if eq else T.not_equals
            return self._fold(lambda env: test(left(env), right(env)), [lc, rc])
        check = {
            "<": lambda c: c < 0,
            "<=": lambda c: c <= 0,
            ">": lambda c: c > 0,
            ">=": lambda c: c >= 0,
        }[op]
        if rc is not _NOCONST and T.is_number(rc) and lc is _NOCONST:
            to_number = T.to_number
            bound = rc

            def cmp_const(env: Env) -> Any:
                v = to_number(left(env))
                if v is UNDEFINED:
                    return UNDEFINED
                return check((v > bound) - (v < bound))

            return cmp_const, _NOCONST

        def cmp(env: Env) -> Any:
            c = T.compare(left(env), right(env))
            return UNDEFINED if c is UNDEFINED else check(c)

        return self._fold(cmp, [lc, rc])

    def c_in_op(self, node: Tree) -> tuple[Closure, Any]:
        return self._membership(node, T.in_array)

    def c_contains_op(self, node: Tree) -> tuple[Closure, Any]:
        return self._membership(node, T.contains)

    def _membership(self, node: Tree, test: Callable[[Any, Any], Any]) -> tuple[Closure, Any]:
        """``a IN b`` and ``a CONTAINS b``: Boolean, or Undefined for operands they do not take."""
        (left, lc), (right, rc) = (self.compile(c) for c in node.children if isinstance(c, Tree))
        return self._fold(lambda env: test(left(env), right(env)), [lc, rc])

    # -- compound expressions -----------------------------------------------------------------

    def c_case_expr(self, node: Tree) -> tuple[Closure, Any]:
        subject: Closure | None = None
        whens: list[tuple[Closure, Closure]] = []
        default: Closure | None = None
        seen_when = False
        for child in node.children:
            if child is None or isinstance(child, Token):
                continue
            if child.data == "when_clause":
                seen_when = True
                cond, result = (self.expr(c) for c in child.children if isinstance(c, Tree))
                whens.append((cond, result))
            elif not seen_when:
                subject = self.expr(child)
            else:
                default = self.expr(child)
        fallback = default or (lambda env: UNDEFINED)
        pairs = tuple(whens)
        if subject is not None:
            subj = subject

            def simple_case(env: Env) -> Any:
                # "If v is Undefined, the result of the case statement is Undefined": no
                # WHEN and not the ELSE (docs.aws.amazon.com/iot/latest/developerguide/
                # iot-sql-case.html).
                v = subj(env)
                if v is UNDEFINED:
                    return UNDEFINED
                for cond, result in pairs:
                    if T.equals(v, cond(env)) is True:
                        return result(env)
                return fallback(env)

            return simple_case, _NOCONST

        def searched_case(env: Env) -> Any:
            for cond, result in pairs:
                if _is_true(cond(env)):
                    return result(env)
            return fallback(env)

        return searched_case, _NOCONST

    def c_object_lit(self, node: Tree) -> tuple[Closure, Any]:
        self._need_v2("object literals", node)
        items: list[tuple[str, Closure]] = []
        for pair in node.children:
            if pair is None:
                continue
            key_tok, value_node = _token(pair.children[0]), pair.children[1]
            key = _unescape(key_tok.value) if key_tok.type == "STRING" else key_tok.value
            items.append((key, self.expr(value_node)))
        frozen = tuple(items)

        def obj(env: Env) -> Any:
            out = {}
            for k, fn in frozen:
                v = fn(env)
                if v is not UNDEFINED:
                    out[k] = v
            return out

        # never folded, even when constant: each evaluation gets its own dict to mutate
        return obj, _NOCONST

    def c_array_lit(self, node: Tree) -> tuple[Closure, Any]:
        self._need_v2("array literals", node)
        fns = tuple(self.expr(c) for c in node.children if c is not None)

        def arr(env: Env) -> Any:
            out = []
            for fn in fns:
                v = fn(env)
                if v is not UNDEFINED:
                    out.append(v)
            return out

        return arr, _NOCONST

    def c_cast_call(self, node: Tree) -> tuple[Closure, Any]:
        self.functions.add("cast")
        value_node = next(c for c in node.children if isinstance(c, Tree))
        type_tok = _token(node.children[-1])
        type_name = type_tok.value.lower()
        if type_name not in CAST_TYPES or (type_name in CAST_TYPES_V2_ONLY and not self.v2):
            raise SqlError(f"unknown cast type '{type_tok.value}'", type_tok.line, type_tok.column)
        inner, const = self.compile(value_node)
        v2 = self.v2

        def cast(env: Env) -> Any:
            r = cast_value(inner(env), type_name, v2)
            return whole_to_int(r) if v2 and type(r) is Decimal else r

        return self._fold(cast, [const])

    def c_func_call(self, node: Tree) -> tuple[Closure, Any]:
        name_tok = _token(node.children[0])
        name = name_tok.value.lower()
        arg_nodes = [c for c in node.children[1:] if c is not None]
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise SqlError(f"unknown function '{name_tok.value}'", name_tok.line, name_tok.column)
        if spec.since == V2:
            self._need_v2(f"function '{name}'", name_tok)
        n = len(arg_nodes)
        if (
            n < spec.min_args
            or (spec.max_args is not None and n > spec.max_args)
            or (name == "get_dynamodb" and n == 5)
        ):
            if spec.max_args == spec.min_args:
                expected = str(spec.min_args)
            elif spec.max_args is None:
                expected = f"at least {spec.min_args}"
            else:
                expected = f"{spec.min_args} to {spec.max_args}"
            raise SqlError(
                f"function '{name}' takes {expected} argument(s), got {n}",
                name_tok.line,
                name_tok.column,
            )
        self.functions.add(name)
        args: list[Closure] = []
        consts: list[Any] = []
        for i, arg in enumerate(arg_nodes):
            if arg.data == "star_arg":
                if name == "encode" and i == 0:
                    args.append(lambda env: env.msg.payload)
                else:
                    args.append(lambda env: env.root)
                consts.append(_NOCONST)
                continue
            fn, c = self.compile(arg)
            args.append(fn)
            consts.append(c)
        if name == "aws_lambda" and consts[0] is not _NOCONST and type(consts[0]) is str:
            self.lambda_arns.append(consts[0])
        if name == "get_dynamodb":
            self.dynamodb_calls += 1
            if self.dynamodb_calls > 1:
                raise SqlError(
                    "get_dynamodb() may be called at most once per statement",
                    name_tok.line,
                    name_tok.column,
                )
            if consts[0] is not _NOCONST and type(consts[0]) is str:
                self.tables.append(consts[0])
        call = self._call(spec.impl, args)
        if name in IMPURE:
            return call, _NOCONST
        return self._fold(call, consts)

    def _call(self, impl: Callable[..., Any], args: list[Closure]) -> Closure:
        v2 = self.v2
        if len(args) == 0:
            raw: Closure = lambda env: impl(env)  # noqa: E731
        elif len(args) == 1:
            (a,) = args
            raw = lambda env: impl(env, a(env))  # noqa: E731
        elif len(args) == 2:
            a, b = args
            raw = lambda env: impl(env, a(env), b(env))  # noqa: E731
        elif len(args) == 3:
            a, b, c = args
            raw = lambda env: impl(env, a(env), b(env), c(env))  # noqa: E731
        else:
            fns = tuple(args)
            raw = lambda env: impl(env, *[f(env) for f in fns])  # noqa: E731
        if not v2:
            return raw

        def call(env: Env) -> Any:
            r = raw(env)
            return whole_to_int(r) if type(r) is Decimal else r

        return call

    def c_nested_select(self, node: Tree) -> tuple[Closure, Any]:
        self._need_v2("nested SELECT", node)
        select_node = node.children[0]
        source_node = next(
            c for c in node.children[1:] if isinstance(c, Tree) and c.data != "where_clause"
        )
        where_node = next(
            (c for c in node.children if isinstance(c, Tree) and c.data == "where_clause"), None
        )
        project = self.select(select_node)
        # FROM * queries the whole payload, as SELECT * returns it
        source = _root if source_node.data == "star_source" else self.expr(source_node)
        where = self.where(where_node)

        def one(env: Env, item: Any) -> Any:
            inner = env.nested(item)
            if where is not None and not _is_true(where(inner)):
                return UNDEFINED
            return project(inner)

        def nested(env: Env) -> Any:
            src = source(env)
            if type(src) is list:
                out = []
                for item in src:
                    v = one(env, item)
                    if v is not UNDEFINED:
                        out.append(v)
                return out
            if type(src) is dict:
                return one(env, src)
            return UNDEFINED

        return nested, _NOCONST

    # -- clauses ------------------------------------------------------------------------------

    def where(self, node: Tree | None) -> Closure | None:
        if node is None:
            return None
        return self.expr(next(c for c in node.children if isinstance(c, Tree)))

    def select(self, node: Tree) -> Callable[[Env], Any]:
        """A projector env -> SELECT output (dict, or any value for SELECT VALUE)."""
        if node.data == "select_value":
            return self.expr(next(c for c in node.children if isinstance(c, Tree)))
        if node.data == "select_value_star":
            return _root
        items: list[_Item] = []
        for item in node.children:
            if isinstance(item, Token):
                continue
            if item.data == "star_item":
                items.append(("star", (), _root))
                continue
            expr_node = item.children[0]
            alias = item.children[-1] if len(item.children) > 1 else None
            fn = self.expr(expr_node)
            if isinstance(alias, Tree) and alias.data == "alias":
                path = tuple(_token(t).value for t in alias.children)
            elif expr_node.data == "field":
                path = (_text(expr_node),)
            elif expr_node.data == "attr":
                path = (_text(expr_node, 1),)
            else:
                path = (self._source(expr_node),)
            items.append(("path", path, fn))
        return _projector(tuple(items))


def _set_path(out: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    cur = out
    for key in path[:-1]:
        nxt = cur.get(key)
        # copy on write: nested objects may be shared with the parsed payload
        nxt = dict(nxt) if type(nxt) is dict else {}
        cur[key] = nxt
        cur = nxt
    cur[path[-1]] = value


def _root(env: Env) -> Any:
    return env.root


# One SELECT item: ("star", (), _root) for ``*``, else ("path", output key path, expression).
_Item = tuple[str, tuple[str, ...], Closure]


def _projector(items: tuple[_Item, ...]) -> Callable[[Env], Any]:
    if len(items) == 1 and items[0][0] == "star":
        return lambda env: env.root
    # (is star, the key when the path has one level, the path, expression): a one-level key is
    # set directly, the common case; deeper aliases (AS a.b) go through _set_path.
    plan = tuple(
        (kind == "star", path[0] if len(path) == 1 else None, path, fn) for kind, path, fn in items
    )

    def project(env: Env) -> Any:
        out: dict[str, Any] = {}
        for is_star, key, path, fn in plan:
            if is_star:
                root = env.root
                if type(root) is dict:
                    out.update(root)
                continue
            v = fn(env)
            if v is UNDEFINED:
                continue
            if key is not None:
                out[key] = v
            else:
                _set_path(out, path, v)
        return out

    return project


_CONST_ENV = Env(UNDEFINED, SqlMessage(topic="", payload=b""), DEFAULT_CONTEXT, False)
_CONST_ENV_V2 = Env(UNDEFINED, SqlMessage(topic="", payload=b""), DEFAULT_CONTEXT, True)


_UNSET: Any = object()


class Result:
    """A SELECT output: a JSON value, or the raw bytes of a non-JSON payload for ``SELECT *``.

    ``value`` is what ``json.loads`` of the output would give (non-integral Decimals as
    floats), safe to hand to ``json.dumps`` or boto3 callers; ``exact`` keeps the SQL values
    with exact Decimals, and ``to_bytes()`` serialises those exactly.
    """

    __slots__ = ("_exact", "_plain", "raw")

    def __init__(self, value: object = None, raw: bytes | None = None) -> None:
        self._exact = value
        self._plain = _UNSET
        self.raw = raw

    @property
    def exact(self) -> object:
        return self._exact

    @property
    def value(self) -> object:
        if self._plain is _UNSET:
            self._plain = T.to_plain(self._exact)
        return self._plain

    def to_bytes(self) -> bytes:
        if self.raw is not None:
            return self.raw
        text = T.dumps(self._exact)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a "\ud800" escape: keep it escaped
            return T.dumps(self._exact, ascii_only=True).encode("ascii")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Result):
            return NotImplemented
        return self.raw == other.raw and self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]  # unhashable like dict; mypy expects a method

    def __repr__(self) -> str:
        return f"Result(value={self._exact!r}, raw={self.raw!r})"


def _check_version(version: str | None) -> str:
    if version is None:
        return V1
    if version not in VERSIONS:
        raise SqlError(f"unsupported SQL version '{version}' (use {V1} or {V2})")
    return version


class Statement:
    """A compiled rule query: match a topic, then evaluate a message to a Result or None."""

    def __init__(self, sql: str, version: str | None = None) -> None:
        self.sql = sql
        self.sql_version = _check_version(version)
        tree = parse_statement(sql)
        comp = _Compiler(self.sql_version, sql)
        sets: list[tuple[str, Closure]] = []
        select_node = where_node = None
        from_tok: Token | None = None
        for child in tree.children:
            if child is None:
                continue
            if isinstance(child, Token):
                if child.type == "STRING":
                    from_tok = child
                continue
            if child.data == "set_clause":
                for assign in child.children:
                    if isinstance(assign, Tree):
                        sets.append((_text(assign)[1:], comp.expr(assign.children[1])))
            elif child.data == "where_clause":
                where_node = child
            else:
                select_node = child
        assert from_tok is not None and select_node is not None
        self.topic_filter = _unescape(from_tok.value)
        try:  # a FROM filter has no size limits
            validate_topic_filter(self.topic_filter, max_bytes=None, max_slashes=None)
        except InvalidTopic as problem:
            raise SqlError(
                f"invalid topic filter '{self.topic_filter}' in FROM: {problem}",
                from_tok.line,
                from_tok.column,
            ) from None
        self._levels = tuple(self.topic_filter.split("/"))
        self._has_wildcard = "+" in self._levels or "#" in self._levels
        self._project = comp.select(select_node)
        self._where = comp.where(where_node)
        self._sets = tuple(sets)
        self._star_only = select_node.data == "select_value_star" or (
            select_node.data == "select_items"
            and sum(1 for c in select_node.children if isinstance(c, Tree)) == 1
            and any(isinstance(c, Tree) and c.data == "star_item" for c in select_node.children)
        )
        self._v2 = self.sql_version == V2
        self.functions_used = frozenset(comp.functions)
        self.fields_used = frozenset(comp.fields)
        self.lambda_arns = tuple(dict.fromkeys(comp.lambda_arns))
        self.tables = tuple(dict.fromkeys(comp.tables))

    def __repr__(self) -> str:
        return f"Statement({self.sql!r}, version={self.sql_version!r})"

    def matches(self, topic: str) -> bool:
        if not self._has_wildcard:
            return topic == self.topic_filter
        return levels_match(self._levels, topic, hash_matches_parent=False)

    def evaluate(self, msg: SqlMessage, ctx: SqlContext | None = None) -> Result | None:
        """The SELECT output for ``msg``, or None when WHERE is not true."""
        root = T.parse_json(msg.payload, self._v2)
        env = Env(root, msg, ctx or DEFAULT_CONTEXT, self._v2)
        for name, fn in self._sets:
            env.vars[name] = fn(env)
        where = self._where
        if where is not None:
            w = where(env)
            if w is not True and not _is_true(w):
                return None
        if root is UNDEFINED and self._star_only:
            return Result(value=None, raw=bytes(msg.payload))
        value = self._project(env)
        if value is UNDEFINED:
            # only SELECT VALUE gets here: "Undefined is converted to an empty string when
            # serialized by itself" (https://docs.aws.amazon.com/iot/latest/developerguide/
            # iot-sql-data-types.html)
            return Result(value=None, raw=b"")
        return Result(value=value)


def compile_sql(sql: str, version: str | None = None) -> Statement:
    """Parse and compile a rule's SQL once; raises SqlError with line and column."""
    try:
        return Statement(sql, version)
    except RecursionError:
        raise SqlError("statement is nested too deeply") from None


def _split_template(template: str) -> list[tuple[str, str, int]]:
    """("text", s, offset) and ("expr", source, offset) parts of a substitution template."""
    parts: list[tuple[str, str, int]] = []
    i, n, text_start = 0, len(template), 0
    while i < n:
        if template.startswith("${", i):
            if text_start < i:
                parts.append(("text", template[text_start:i], text_start))
            j, depth, quote = i + 2, 0, ""
            while j < n:
                ch = template[j]
                if quote:
                    if ch == "\\":
                        j += 1
                    elif ch == quote:
                        quote = ""
                elif ch in "'\"":
                    quote = ch
                elif ch == "{":
                    depth += 1
                elif ch == "}":
                    if depth == 0:
                        break
                    depth -= 1
                j += 1
            if j >= n:
                raise SqlError(f"unterminated substitution '${{' at column {i + 1}", 1, i + 1)
            parts.append(("expr", template[i + 2 : j], i + 2))
            i = j + 1
            text_start = i
        else:
            i += 1
    if text_start < n:
        parts.append(("text", template[text_start:], text_start))
    return parts


class Template:
    """A substitution template; ``${expr}`` parts see the original payload, not SELECT aliases."""

    def __init__(self, template: str, version: str | None = None) -> None:
        self.template = template
        self.sql_version = _check_version(version)
        self._v2 = self.sql_version == V2
        pieces: list[Any] = []
        functions: set[str] = set()
        for kind, text, offset in _split_template(template):
            if kind == "text":
                pieces.append(text)
                continue
            try:
                tree = parse_expression(text)
                comp = _Compiler(self.sql_version, text)
                fn = comp.expr(tree.children[0])
            except SqlError as err:
                column = None if err.column is None else err.column + offset
                msg = str(err)
                if err.column is not None and err.line == 1:
                    msg = msg.replace(f"column {err.column}", f"column {column}", 1)
                raise SqlError(f"in template: {msg}", err.line, column) from None
            except RecursionError:
                raise SqlError("template expression is nested too deeply") from None
            functions |= comp.functions
            pieces.append(fn)
        self._pieces = tuple(pieces)
        self._static = all(isinstance(p, str) for p in pieces)
        self.functions_used = frozenset(functions)

    def render(self, msg: SqlMessage, ctx: SqlContext | None = None) -> str:
        if self._static:
            return "".join(self._pieces)
        env = Env(T.parse_json(msg.payload, self._v2), msg, ctx or DEFAULT_CONTEXT, self._v2)
        out = []
        for piece in self._pieces:
            if type(piece) is str:
                out.append(piece)
                continue
            v = piece(env)
            if type(v) is str:
                out.append(v)
            elif v is not UNDEFINED:
                out.append(T.dumps(v))
        return "".join(out)


def compile_template(template: str, version: str | None = None) -> Template:
    return Template(template, version)
