"""Set-based generator for rules that are not plain equality joins.

Rather than scanning every line's signal list once per rule (a lambda per line and
rule), the signals of a line are pivoted once into a few columns per rule key, and each
comparison becomes a test on those columns:

* ``k < > <= >= n``  → the line's min / max numeric sort key of ``k``. Under the
  any-value semantics (§4.4) "some value ≥ n" is exactly "max ≥ n".
* ``contains / startswith / endswith`` → one folded string of all values of ``k``
  framed by U+001F, which never occurs in values (control characters make a line a
  Format Error), so a literal cannot match across two values.
* ``== != matcheswords matchesregex`` → the list of ``k``'s values (small), tested
  with the per-value templates of ``compile_duckdb``.

Agreement with ``evaluate`` is property-tested like the other generators.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from onramp.rules.ast import And, Comparison, Not, Or, Rule
from onramp.rules.compile_duckdb import VALUE_TEMPLATES, sql_is_number, sql_number_sort_key, sql_string
from onramp.rules.values import fold, number_sort_key

SEP = "chr(31)"
_RELATIONAL = {">=": ("max", ">="), ">": ("max", ">"), "<=": ("min", "<="), "<": ("min", "<")}
_TEXT = {"contains": ("", ""), "startswith": ("\x1f", ""), "endswith": ("", "\x1f")}


@dataclass
class Pivot:
    """The columns to compute per line, and one SQL boolean per rule over them."""

    keys: dict[str, int] = field(default_factory=dict)
    needs: dict[str, set[str]] = field(default_factory=dict)  # key -> {"num", "text", "list"}
    rules: list[tuple[int, str]] = field(default_factory=list)  # (sid, SQL boolean)

    def _col(self, key: str, what: str) -> str:
        if key not in self.keys:
            self.keys[key] = len(self.keys)
            self.needs[key] = set()
        if what in ("max", "min"):
            self.needs[key].add("num")
        elif what != "p":
            self.needs[key].add(what)
        return f"c{self.keys[key]}_{what}"

    def add_rule(self, sid: int, rule: Rule) -> None:
        self.rules.append((sid, self._sql(rule)))

    def _sql(self, node: Rule) -> str:
        if isinstance(node, And):
            return f"({self._sql(node.left)} AND {self._sql(node.right)})"
        if isinstance(node, Or):
            return f"({self._sql(node.left)} OR {self._sql(node.right)})"
        if isinstance(node, Not):
            return f"(NOT {self._sql(node.operand)})"
        assert isinstance(node, Comparison)
        return f"coalesce({self._comparison(node)}, false)"

    def _comparison(self, c: Comparison) -> str:
        if c.op in _RELATIONAL:
            agg, op = _RELATIONAL[c.op]
            return f"({self._col(c.key, agg)} {op} {sql_string(number_sort_key(c.literal.text))})"
        if c.op in _TEXT:
            before, after = _TEXT[c.op]
            return f"contains({self._col(c.key, 'text')}, {sql_string(before + fold(c.literal.text) + after)})"
        template, negated = VALUE_TEMPLATES[c.op]
        any_value = f"list_bool_or(list_transform({self._col(c.key, 'list')}, lambda x: {template('x', c.literal)}))"
        if negated:
            return f"({self._col(c.key, 'p')} AND NOT coalesce({any_value}, false))"
        return any_value

    def aggregates_sql(self) -> str:
        """Aggregate expressions over rows (k, v) grouped by line."""
        cols = []
        for key, i in self.keys.items():
            k = f"k = {sql_string(key)}"
            cols.append(f"coalesce(bool_or({k}), false) AS c{i}_p")
            if "num" in self.needs[key]:
                sort_key = sql_number_sort_key("v")
                cols.append(f"max({sort_key}) FILTER (WHERE {k} AND {sql_is_number('v')}) AS c{i}_max")
                cols.append(f"min({sort_key}) FILTER (WHERE {k} AND {sql_is_number('v')}) AS c{i}_min")
            if "text" in self.needs[key]:
                cols.append(f"{SEP} || string_agg(lower(v), {SEP}) FILTER (WHERE {k}) || {SEP} AS c{i}_text")
            if "list" in self.needs[key]:
                cols.append(f"list(v) FILTER (WHERE {k}) AS c{i}_list")
        return ", ".join(cols)
