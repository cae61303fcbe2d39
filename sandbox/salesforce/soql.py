"""A SOQL subset: parse, check against the org schema, evaluate, render as the REST API does.

Supported (https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/):

* ``SELECT`` field list or ``COUNT()``; relationship fields up to five levels
  (``i360core__Contact__r.Email``, ``i360core__Sales_Opportunity__r.i360core__Contact__r.Email``)
  and polymorphic ones (``Who.Name``, ``What.Type``); ``FROM`` one object.
* ``WHERE`` with ``= != <> < <= > >= IN, NOT IN, LIKE``, ``AND``/``OR``/``NOT`` and parentheses;
  string, number, ``true``/``false``, ``null``, date (``2024-01-01``) and datetime
  (``2024-01-01T00:00:00Z``, ``…00.000+0000``, ``…00-05:00``) literals.
* ``ORDER BY`` several fields with ``ASC``/``DESC`` and ``NULLS FIRST|LAST``; ``LIMIT``;
  ``OFFSET`` (≤ 2000).

Salesforce's rules a client can trip over are enforced, with Salesforce's error codes:
mixing ``AND`` and ``OR`` without parentheses is a MALFORMED_QUERY; a quoted datetime
(``SystemModstamp > '2024-01-01T00:00:00Z'``) or an unquoted string is an INVALID_FIELD; long
text areas (Note.Body, Task.Description) can be neither filtered nor sorted; a malformed id
literal is an INVALID_QUERY_FILTER_OPERATOR. Text comparisons are case-insensitive, ``!=`` matches
null values, ``ASC`` sorts nulls first and ``DESC`` last, as in SOQL.

Not supported (MALFORMED_QUERY): sub-queries and semi-joins, aggregate functions other than
``COUNT()``, ``GROUP BY``, date literals such as ``LAST_N_DAYS:n``, bind variables, ``WITH``,
``FOR``, ``USING SCOPE``.
"""

from __future__ import annotations

import re
import time
from calendar import timegm
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sandbox.salesforce.schema import (
    POLYMORPHIC_NAME_FIELDS,
    TEXT_TYPES,
    FieldDef,
    ObjectDef,
    Schema,
    normalize_id,
)

__all__ = ["CompiledQuery", "SoqlError", "compile_query", "parse"]

Record = dict[str, Any]
Lookup = Callable[[str], "tuple[ObjectDef, Record] | None"]

MAX_OFFSET = 2000
MAX_RELATIONSHIP_DEPTH = 5


class SoqlError(Exception):
    """A query Salesforce would reject; ``error_code`` is Salesforce's."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


def _located(text: str, pos: int, message: str) -> str:
    # Salesforce's layout: the offending line, a caret, "ERROR at Row:r:Column:c", the message.
    row = text.count("\n", 0, pos) + 1
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    end = len(text) if end < 0 else end
    col = pos - start
    return f"\n{text[start:end]}\n{' ' * col}^\nERROR at Row:{row}:Column:{col + 1}\n{message}"


# ----------------------------------------------------------------------------------------------
# Tokens
# ----------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\dT]))
  | (?P<number>-?\d+(?:\.\d+)?(?![\w.]))
  | (?P<op>!=|<>|<=|>=|=|<|>)
  | (?P<punct>[(),])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)
_ESCAPES = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
    "_": "_",
    "%": "%",
}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "ident" else ""


def _tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise SoqlError(
                "MALFORMED_QUERY", _located(text, pos, f"unexpected token: '{text[pos]}'")
            )
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    tokens.append(Token("eof", "<EOF>", len(text)))
    return tokens


def _decode_string(text: str, raw: str, pos: int) -> str:
    body = raw[1:-1]
    if "\\" not in body:
        return body
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise SoqlError("MALFORMED_QUERY", _located(text, pos, "Invalid string literal"))
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


# ----------------------------------------------------------------------------------------------
# Syntax tree
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldPath:
    parts: tuple[str, ...]
    pos: int


@dataclass(frozen=True)
class Literal:
    kind: str  # string | number | boolean | null | datetime | date
    value: Any
    raw: str
    pos: int


@dataclass(frozen=True)
class Comparison:
    field: FieldPath
    op: str  # = != < <= > >= IN NOT IN LIKE
    value: Literal | tuple[Literal, ...]
    pos: int


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND | OR
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class NotOp:
    item: Condition


Condition = Comparison | BoolOp | NotOp


@dataclass(frozen=True)
class OrderItem:
    field: FieldPath
    descending: bool
    nulls_last: bool | None


@dataclass
class SelectQuery:
    text: str
    fields: list[FieldPath]
    count_only: bool
    sobject: str
    sobject_pos: int
    where: Condition | None = None
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None


_UNSUPPORTED_CLAUSES = {"GROUP", "HAVING", "WITH", "FOR", "USING", "TYPEOF", "UPDATE"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def fail(self, tok: Token, message: str | None = None) -> SoqlError:
        return SoqlError(
            "MALFORMED_QUERY",
            _located(self.text, tok.pos, message or f"unexpected token: {tok.text}"),
        )

    def keyword(self, word: str) -> bool:
        if self.peek().upper == word:
            self.take()
            return True
        return False

    def expect_keyword(self, word: str) -> Token:
        tok = self.take()
        if tok.upper != word:
            raise self.fail(tok)
        return tok

    def expect_punct(self, ch: str) -> None:
        tok = self.take()
        if tok.kind != "punct" or tok.text != ch:
            raise self.fail(tok)

    def integer(self) -> int:
        tok = self.take()
        if tok.kind != "number" or not tok.text.isdigit():
            raise self.fail(tok)
        return int(tok.text)

    def parse(self) -> SelectQuery:
        self.expect_keyword("SELECT")
        fields: list[FieldPath] = []
        count_only = False
        if self.peek().upper == "COUNT" and self.peek(1).text == "(" and self.peek(2).text == ")":
            self.i += 3
            count_only = True
        else:
            while True:
                tok = self.take()
                if tok.kind == "punct" and tok.text == "(":
                    raise self.fail(tok, "parent-to-child sub-queries are not supported here")
                if tok.kind != "ident" or tok.upper in ("FROM", "SELECT"):
                    raise self.fail(tok)
                if self.peek().text == "(":
                    raise self.fail(self.peek(), f"function {tok.text}() is not supported here")
                fields.append(FieldPath(tuple(tok.text.split(".")), tok.pos))
                if self.peek().text != ",":
                    break
                self.take()
        self.expect_keyword("FROM")
        obj = self.take()
        if obj.kind != "ident" or "." in obj.text:
            raise self.fail(obj)
        query = SelectQuery(self.text, fields, count_only, obj.text, obj.pos)
        if self.keyword("WHERE"):
            query.where = self.condition()
        if self.keyword("ORDER"):
            self.expect_keyword("BY")
            while True:
                query.order_by.append(self.order_item())
                if self.peek().text != ",":
                    break
                self.take()
        if self.keyword("LIMIT"):
            query.limit = self.integer()
        if self.keyword("OFFSET"):
            tok = self.peek()
            query.offset = self.integer()
            if query.offset > MAX_OFFSET:
                raise SoqlError(
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    _located(self.text, tok.pos, f"Maximum SOQL offset allowed is {MAX_OFFSET}"),
                )
        tok = self.peek()
        if tok.kind != "eof":
            if tok.upper in _UNSUPPORTED_CLAUSES:
                raise self.fail(tok, f"{tok.text} is not supported here")
            raise self.fail(tok)
        return query

    def field_path(self) -> FieldPath:
        tok = self.take()
        if tok.kind != "ident":
            raise self.fail(tok)
        return FieldPath(tuple(tok.text.split(".")), tok.pos)

    def order_item(self) -> OrderItem:
        path = self.field_path()
        descending = False
        if self.keyword("DESC"):
            descending = True
        else:
            self.keyword("ASC")
        nulls_last: bool | None = None
        if self.keyword("NULLS"):
            tok = self.take()
            if tok.upper not in ("FIRST", "LAST"):
                raise self.fail(tok)
            nulls_last = tok.upper == "LAST"
        return OrderItem(path, descending, nulls_last)

    def condition(self) -> Condition:
        items = [self.unary()]
        op: str | None = None
        while self.peek().upper in ("AND", "OR"):
            tok = self.take()
            if op is not None and tok.upper != op:
                # SOQL requires parentheses when AND and OR are mixed.
                raise self.fail(tok)
            op = tok.upper
            items.append(self.unary())
        if op is None:
            return items[0]
        return BoolOp(op, tuple(items))

    def unary(self) -> Condition:
        if self.keyword("NOT"):
            return NotOp(self.unary())
        if self.peek().text == "(":
            self.take()
            inner = self.condition()
            self.expect_punct(")")
            return inner
        return self.comparison()

    def comparison(self) -> Comparison:
        path = self.field_path()
        tok = self.take()
        if tok.upper == "NOT":
            self.expect_keyword("IN")
            return Comparison(path, "NOT IN", self.literal_list(), tok.pos)
        if tok.upper == "IN":
            return Comparison(path, "IN", self.literal_list(), tok.pos)
        if tok.upper == "LIKE":
            value = self.literal()
            if value.kind != "string":
                raise self.fail(self.tokens[self.i - 1])
            return Comparison(path, "LIKE", value, tok.pos)
        if tok.kind == "op":
            op = "!=" if tok.text == "<>" else tok.text
            return Comparison(path, op, self.literal(), tok.pos)
        raise self.fail(tok)

    def literal_list(self) -> tuple[Literal, ...]:
        self.expect_punct("(")
        if self.peek().upper == "SELECT":
            raise self.fail(self.peek(), "semi-join sub-queries are not supported here")
        items = [self.literal()]
        while self.peek().text == ",":
            self.take()
            items.append(self.literal())
        self.expect_punct(")")
        return tuple(items)

    def literal(self) -> Literal:
        tok = self.take()
        if tok.kind == "string":
            return Literal(
                "string", _decode_string(self.text, tok.text, tok.pos), tok.text, tok.pos
            )
        if tok.kind == "number":
            value = float(tok.text) if "." in tok.text else int(tok.text)
            return Literal("number", value, tok.text, tok.pos)
        if tok.kind == "datetime":
            return Literal("datetime", _canonical_datetime(tok.text), tok.text, tok.pos)
        if tok.kind == "date":
            return Literal("date", tok.text, tok.text, tok.pos)
        if tok.upper in ("TRUE", "FALSE"):
            return Literal("boolean", tok.upper == "TRUE", tok.text, tok.pos)
        if tok.upper == "NULL":
            return Literal("null", None, tok.text, tok.pos)
        raise self.fail(tok)


_DT_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?(Z|([+-])(\d{2}):?(\d{2}))"
)


def _canonical_datetime(text: str) -> str:
    """A datetime literal in the stored form (UTC, ``.mmm+0000``), so strings compare in order."""
    m = _DT_RE.fullmatch(text)
    assert m is not None
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    millis = (m.group(7) or "0").ljust(3, "0")
    epoch = timegm((y, mo, d, h, mi, s, 0, 0, 0))
    if m.group(8) != "Z":
        offset = int(m.group(10)) * 3600 + int(m.group(11)) * 60
        epoch -= offset if m.group(9) == "+" else -offset
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{millis}+0000"


def parse(text: str) -> SelectQuery:
    """Parse a SOQL statement; raises :class:`SoqlError` (MALFORMED_QUERY) on syntax errors."""
    return _Parser(text).parse()


# ----------------------------------------------------------------------------------------------
# Binding to the schema
# ----------------------------------------------------------------------------------------------

_POLY_FIELD_TYPES = {"Id": "id", "IsActive": "boolean", "Type": "picklist"}


@dataclass
class _Resolved:
    """A field path bound to the schema: relationship hops, then a terminal field."""

    names: tuple[str, ...]  # canonical spelling, e.g. ("i360core__Contact__r", "Email")
    hops: tuple[FieldDef, ...]  # reference fields followed
    terminal: FieldDef
    polymorphic_terminal: bool
    getter: Callable[[Record], Any]


@dataclass
class _RelNode:
    hop: FieldDef
    children: dict[str, _RelNode | str] = field(default_factory=dict)


class CompiledQuery:
    """A query bound to one org's schema; :meth:`execute` then :meth:`render` each record."""

    def __init__(
        self,
        query: SelectQuery,
        obj: ObjectDef,
        columns: list[_Resolved],
        predicate: Callable[[Record], bool] | None,
        order: list[tuple[_Resolved, bool, bool]],
        lookup: Lookup,
    ) -> None:
        self.query = query
        self.obj = obj
        self.columns = columns
        self.predicate = predicate
        self.order = order
        self.lookup = lookup
        self.count_only = query.count_only
        self.shape: dict[str, _RelNode | str] = {}
        for col in columns:
            node = self.shape
            for hop in col.hops:
                key = hop.relationship_name or hop.name
                existing = node.get(key)
                if not isinstance(existing, _RelNode):
                    existing = _RelNode(hop)
                    node[key] = existing
                node = existing.children
            node.setdefault(col.terminal.name, col.terminal.name)

    def execute(self, records: Iterable[Record], *, include_deleted: bool) -> list[Record]:
        """Matching records in result order, after OFFSET and LIMIT."""
        pred = self.predicate
        if include_deleted:
            rows = [r for r in records if pred is None or pred(r)]
        else:
            rows = [r for r in records if not r.get("IsDeleted") and (pred is None or pred(r))]
        for col, descending, nulls_last in reversed(self.order):
            rows = _sort_pass(rows, col, descending, nulls_last)
        start = self.query.offset or 0
        end = None if self.query.limit is None else start + self.query.limit
        return rows[start:end]

    def render(self, record: Record, version: str) -> dict[str, Any]:
        return self._render(self.obj.name, record, self.shape, version, polymorphic=False)

    def _render(
        self,
        type_name: str,
        record: Record,
        shape: dict[str, _RelNode | str],
        version: str,
        *,
        polymorphic: bool,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "attributes": {
                "type": "Name" if polymorphic else type_name,
                "url": f"/services/data/v{version}/sobjects/{type_name}/{record['Id']}",
            }
        }
        for key, item in shape.items():
            if isinstance(item, str):
                if polymorphic and item == "Type":
                    out[key] = type_name
                else:
                    out[key] = record.get(item)
                continue
            parent_id = record.get(item.hop.name)
            hit = self.lookup(parent_id) if parent_id else None
            if hit is None:
                out[key] = None
            else:
                out[key] = self._render(
                    hit[0].name, hit[1], item.children, version, polymorphic=item.hop.polymorphic
                )
        return out


def _sort_pass(
    rows: list[Record], col: _Resolved, descending: bool, nulls_last: bool
) -> list[Record]:
    getter = col.getter
    text = col.terminal.type in TEXT_TYPES
    keyed = []
    nulls = []
    for r in rows:
        v = getter(r)
        if v is None:
            nulls.append(r)
        else:
            keyed.append((v.casefold() if text else v, r))
    keyed.sort(key=lambda kv: kv[0], reverse=descending)  # stable, also when reversed
    ordered = [r for _, r in keyed]
    return ordered + nulls if nulls_last else nulls + ordered


def _invalid_field(query: SelectQuery, pos: int, message: str) -> SoqlError:
    return SoqlError("INVALID_FIELD", _located(query.text, pos, message))


def _no_such_column(query: SelectQuery, pos: int, name: str, entity: str) -> SoqlError:
    return _invalid_field(
        query,
        pos,
        f"No such column '{name}' on entity '{entity}'. If you are attempting to use a custom "
        "field, be sure to append the '__c' after the custom field name. Please reference your "
        "WSDL or the describe call for the appropriate names.",
    )


def _resolve(
    query: SelectQuery, schema: Schema, obj: ObjectDef, path: FieldPath, lookup: Lookup
) -> _Resolved:
    parts = list(path.parts)
    if len(parts) > 1 and parts[0].lower() == obj.name.lower():
        parts = parts[1:]  # "Contact.Email FROM Contact" is allowed
    if len(parts) - 1 > MAX_RELATIONSHIP_DEPTH:
        raise _invalid_field(
            query, path.pos, "SOQL statements cannot query relationships more than 5 levels away"
        )
    names: list[str] = []
    hops: list[FieldDef] = []
    current: ObjectDef | None = obj
    for i, part in enumerate(parts[:-1]):
        assert current is not None
        rel = current.relationship(part)
        if rel is None:
            raise _invalid_field(
                query,
                path.pos,
                f"Didn't understand relationship '{part}' in field path. If you are attempting "
                "to use a custom relationship, be sure to append the '__r' after the custom "
                "relationship name. Please reference your WSDL or the describe call for the "
                "appropriate names.",
            )
        names.append(rel.relationship_name or part)
        hops.append(rel)
        if rel.polymorphic:
            if i != len(parts) - 2:
                raise _invalid_field(
                    query,
                    path.pos,
                    f"Didn't understand relationship '{parts[i + 1]}' in field path.",
                )
            current = None
        else:
            current = schema.get(rel.reference_to[0])
    last = parts[-1]
    if current is None:  # polymorphic relationship: fields of the "Name" object
        canonical = next((f for f in POLYMORPHIC_NAME_FIELDS if f.lower() == last.lower()), None)
        if canonical is None:
            raise _no_such_column(query, path.pos, last, "Name")
        terminal = FieldDef(canonical, _POLY_FIELD_TYPES.get(canonical, "string"))
        polymorphic_terminal = True
    else:
        found = current.field(last)
        if found is None:
            raise _no_such_column(query, path.pos, last, current.name)
        terminal = found
        polymorphic_terminal = False
    names.append(terminal.name)
    return _Resolved(
        tuple(names),
        tuple(hops),
        terminal,
        polymorphic_terminal,
        _getter(tuple(h.name for h in hops), terminal.name, polymorphic_terminal, lookup),
    )


def _getter(
    hops: tuple[str, ...], name: str, polymorphic: bool, lookup: Lookup
) -> Callable[[Record], Any]:
    if not hops:
        return lambda r: r.get(name)

    def get(record: Record) -> Any:
        obj: ObjectDef | None = None
        r: Record | None = record
        for hop in hops:
            assert r is not None
            ref = r.get(hop)
            if ref is None:
                return None
            hit = lookup(ref)
            if hit is None:
                return None
            obj, r = hit
        assert r is not None and obj is not None
        if polymorphic and name == "Type":
            return obj.name
        return r.get(name)

    return get


_TYPE_WORDS = {
    "datetime": "dateTime",
    "date": "date",
    "boolean": "boolean",
    "double": "double",
    "currency": "double",
    "int": "int",
    "percent": "double",
}


def _coerce(query: SelectQuery, col: _Resolved, lit: Literal) -> Any:
    """The literal as a value comparable with the stored one, or Salesforce's type error."""
    ftype = col.terminal.type
    if lit.kind == "null":
        return None
    if ftype in ("id", "reference"):
        if lit.kind != "string":
            raise _invalid_field(
                query,
                lit.pos,
                f"value of filter criterion for field '{col.terminal.name}' must be of type id "
                "and should be enclosed in quotes",
            )
        norm = normalize_id(lit.value)
        if norm is None:
            raise SoqlError(
                "INVALID_QUERY_FILTER_OPERATOR",
                _located(query.text, lit.pos, f"invalid ID field: {lit.value}"),
            )
        return norm
    if ftype in TEXT_TYPES or ftype == "base64":
        if lit.kind != "string":
            raise _invalid_field(
                query,
                lit.pos,
                f"value of filter criterion for field '{col.terminal.name}' must be of type "
                "string and should be enclosed in quotes",
            )
        return lit.value.casefold()
    expected = {"datetime": "datetime", "date": "date", "boolean": "boolean"}.get(ftype, "number")
    if lit.kind != expected:
        raise _invalid_field(
            query,
            lit.pos,
            f"value of filter criterion for field '{col.terminal.name}' must be of type "
            f"{_TYPE_WORDS.get(ftype, ftype)} and should not be enclosed in quotes",
        )
    return lit.value


def _like_regex(raw: str) -> re.Pattern[str]:
    body = raw[1:-1]
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(re.escape(_ESCAPES.get(body[i + 1], body[i + 1])))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def _compile_condition(
    query: SelectQuery, schema: Schema, obj: ObjectDef, cond: Condition, lookup: Lookup
) -> Callable[[Record], bool]:
    if isinstance(cond, BoolOp):
        parts = [_compile_condition(query, schema, obj, c, lookup) for c in cond.items]
        if cond.op == "AND":
            return lambda r: all(p(r) for p in parts)
        return lambda r: any(p(r) for p in parts)
    if isinstance(cond, NotOp):
        inner = _compile_condition(query, schema, obj, cond.item, lookup)
        return lambda r: not inner(r)

    col = _resolve(query, schema, obj, cond.field, lookup)
    if not col.terminal.filterable:
        raise _invalid_field(
            query,
            cond.field.pos,
            f"field '{col.terminal.name}' can not be filtered in a query call",
        )
    get = col.getter
    ftype = col.terminal.type
    text = ftype in TEXT_TYPES
    op = cond.op

    def bad_operator() -> SoqlError:
        return SoqlError(
            "INVALID_QUERY_FILTER_OPERATOR",
            _located(query.text, cond.pos, f"invalid operator on {ftype} field"),
        )

    if op == "LIKE":
        if not text:
            raise bad_operator()
        assert isinstance(cond.value, Literal)
        regex = _like_regex(cond.value.raw)
        return lambda r: (v := get(r)) is not None and regex.fullmatch(v) is not None

    if op in ("IN", "NOT IN"):
        assert isinstance(cond.value, tuple)
        values = {_coerce(query, col, lit) for lit in cond.value}
        has_null = None in values
        values.discard(None)

        def member(r: Record) -> bool:
            v = get(r)
            if v is None:
                return has_null
            return (v.casefold() if text else v) in values

        if op == "IN":
            return member
        return lambda r: not member(r)

    assert isinstance(cond.value, Literal)
    value = _coerce(query, col, cond.value)
    if value is None:
        if op == "=":
            return lambda r: get(r) is None
        if op == "!=":
            return lambda r: get(r) is not None
        raise SoqlError(
            "INVALID_QUERY_FILTER_OPERATOR",
            _located(
                query.text, cond.pos, f"invalid operator on null for field {col.terminal.name}"
            ),
        )
    if ftype == "boolean" and op not in ("=", "!="):
        raise bad_operator()
    norm: Callable[[Any], Any] = (lambda v: v.casefold()) if text else (lambda v: v)
    if op == "=":
        return lambda r: (v := get(r)) is not None and norm(v) == value
    if op == "!=":
        return lambda r: (v := get(r)) is None or norm(v) != value
    if op == ">":
        return lambda r: (v := get(r)) is not None and norm(v) > value
    if op == ">=":
        return lambda r: (v := get(r)) is not None and norm(v) >= value
    if op == "<":
        return lambda r: (v := get(r)) is not None and norm(v) < value
    if op == "<=":
        return lambda r: (v := get(r)) is not None and norm(v) <= value
    raise bad_operator()  # pragma: no cover - the parser only produces the operators above


def compile_query(query: SelectQuery, schema: Schema, lookup: Lookup) -> CompiledQuery:
    """Bind a parsed query to ``schema``; raises :class:`SoqlError` with Salesforce's codes."""
    obj = schema.get(query.sobject)
    if obj is None:
        raise SoqlError(
            "INVALID_TYPE",
            _located(
                query.text,
                query.sobject_pos,
                f"sObject type '{query.sobject}' is not supported. If you are attempting to use "
                "a custom object, be sure to append the '__c' after the entity name. Please "
                "reference your WSDL or the describe call for the appropriate names.",
            ),
        )
    columns: list[_Resolved] = []
    seen: set[tuple[str, ...]] = set()
    for path in query.fields:
        col = _resolve(query, schema, obj, path, lookup)
        key = tuple(n.lower() for n in col.names)
        if key in seen:
            raise _invalid_field(
                query, path.pos, f"duplicate field selected: {'.'.join(col.names)}"
            )
        seen.add(key)
        columns.append(col)
    predicate = _compile_condition(query, schema, obj, query.where, lookup) if query.where else None
    order: list[tuple[_Resolved, bool, bool]] = []
    for item in query.order_by:
        col = _resolve(query, schema, obj, item.field, lookup)
        if not col.terminal.sortable:
            raise _invalid_field(
                query,
                item.field.pos,
                f"field '{col.terminal.name}' can not be sorted in a query call",
            )
        nulls_last = item.descending if item.nulls_last is None else item.nulls_last
        order.append((col, item.descending, nulls_last))
    return CompiledQuery(query, obj, columns, predicate, order, lookup)
