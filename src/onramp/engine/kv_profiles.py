"""Simple key-value profiles merged natively (ADR 0008), so that most of a key-value file
skips the SQL plan.

ADR 0007 did this for `d_sid` lines. Key-value lines need the data source's rules, so
``compile_rules`` turns the job's ``Rulebook`` into the arrays the extension
(``_kv_profiles.pyx``) reads:

- every rule key, numbered; a line's key is looked up among them (an unknown key is an
  unused signal);
- the equality atoms (``rules/equality.py``) grouped by (key, token), so that a value's
  tokens find their atoms with one lookup each;
- every other rule as a postfix program over its comparisons, each comparison with the
  bytes it compares against: the equality token (``==``, ``!=``), the number sort key
  (``<`` ``>`` ``<=`` ``>=``) or the folded text (``contains``, ``startswith``,
  ``endswith``); ``matcheswords`` and ``matchesregex`` are left to the plan: a line that
  carries a key one of them reads is not simple;
- the keys of each trait's rule, for the used signals of §4.6.

``merge_chunk`` returns the same ``ChunkMerge`` as the d_sid pass, so the ingest stages and
counts both alike. Profiles of `.sync` files whose user ID is their profile (platform UUIDs,
cross-device customer IDs) qualify; the property test ``tests/property/test_native_kv.py``
runs random files both ways.
"""

from __future__ import annotations

import struct
from collections import defaultdict

import numpy as np
import pyarrow as pa

from onramp.engine.arrow_bytes import binary_parts
from onramp.engine.rulebook import Rulebook
from onramp.engine.simple_profiles import ADD_LIST_SCHEMA, KEY_SCHEMA, REMOVE_SCHEMA, ChunkMerge, no_trait_rows, stored_counters
from onramp.rules.ast import And, Comparison, Not, Or, Rule, chain
from onramp.rules.equality import eq_token_for_literal
from onramp.rules.values import fold, number_sort_key

try:
    from onramp.engine._kv_profiles import KvRules
except ImportError:  # pragma: no cover - every supported install builds the extension
    KvRules = None

KIND_PLATFORM_UUID, KIND_CUSTOMER_ID = 0, 1  # the user-ID checks the extension makes
OPS = {"==": 0, "!=": 1, "<": 2, ">": 3, "<=": 4, ">=": 5, "contains": 6, "startswith": 7, "endswith": 8}
UNSUPPORTED = 9  # matcheswords, matchesregex
P_AND, P_OR, P_NOT = -1, -2, -3
_FIELD = 1 << 14  # terms, atoms and atoms per term are packed in 14 bits each (_kv_profiles._terms)
_SPAN = 1 << 20  # and trait IDs minus the lowest in 20


def available() -> bool:
    return KvRules is not None


def _blob(items: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    off = np.zeros(len(items) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(b) for b in items]) if items else []
    data = np.frombuffer(b"".join(items) or b"\0", dtype=np.uint8).copy()
    return data, off


def _csr(groups: list[list[int]], dtype=np.int32) -> tuple[np.ndarray, np.ndarray]:
    start = np.zeros(len(groups) + 1, dtype=np.int64)
    start[1:] = np.cumsum([len(g) for g in groups]) if groups else []
    flat = np.array([x for g in groups for x in g], dtype=dtype)
    return start, flat


def compile_rules(book: Rulebook, status: np.ndarray, lo: int):
    """The extension's view of ``book`` (``status``/``lo``: the trait lookup list), or None
    when the native pass cannot take this data source: a rule true for a line without its
    keys, or rules too large for the packed encodings."""
    if not available() or book.empty_true or len(status) >= _SPAN:
        return None
    keys: dict[str, int] = {}

    def key_id(key: str) -> int:
        return keys.setdefault(key, len(keys))

    flags: dict[int, int] = defaultdict(int)
    groups: dict[bytes, list[tuple[int, int, int, int]]] = defaultdict(list)
    for sid, term, atom, n_atoms, key, token in book.eq_atoms:
        if max(term, atom, n_atoms) >= _FIELD:
            return None
        k = key_id(key)
        flags[k] |= 1
        groups[struct.pack("<i", k) + token.encode()].append((sid, term, atom, n_atoms))
    # Programs: comparisons numbered globally, in postfix order.
    atom_key: list[int] = []
    atom_neg: list[int] = []
    by_key: dict[int, list[tuple[int, int, bytes]]] = defaultdict(list)  # key -> (atom, op, literal)
    readers: dict[int, list[int]] = defaultdict(list)  # key -> programs
    programs: list[list[int]] = []

    def emit(node: Rule, out: list[int]) -> None:
        if isinstance(node, (And, Or)):
            operands = chain(node)
            emit(operands[0], out)
            for operand in operands[1:]:
                emit(operand, out)
                out.append(P_AND if isinstance(node, And) else P_OR)
        elif isinstance(node, Not):
            emit(node.operand, out)
            out.append(P_NOT)
        else:
            assert isinstance(node, Comparison)
            k = key_id(node.key)
            atom = len(atom_key)
            atom_key.append(k)
            atom_neg.append(int(node.op == "!="))
            op = OPS.get(node.op, UNSUPPORTED)
            if op in (OPS["=="], OPS["!="]):
                literal = eq_token_for_literal(node.literal)
            elif op <= OPS[">="]:
                literal = number_sort_key(node.literal.text)
            elif op == UNSUPPORTED:
                literal, flags[k] = "", flags[k] | 4
            else:
                literal = fold(node.literal.text)
            flags[k] |= 2
            by_key[k].append((atom, op, literal.encode()))
            if len(programs) not in readers[k]:
                readers[k].append(len(programs))
            out.append(atom)

    for rule in book.complex_asts:
        program: list[int] = []
        emit(rule, program)
        programs.append(program)
    for _sid, key in book.rule_keys:
        key_id(key)
    names = sorted(keys, key=keys.__getitem__)
    keys_blob, keys_off = _blob([k.encode() for k in names])
    tokens = list(groups)
    tok_blob, tok_off = _blob(tokens)
    tok_start, _ = _csr([list(range(len(groups[t]))) for t in tokens])
    atom_rows = np.array([row for t in tokens for row in groups[t]], dtype=np.int32).reshape(-1, 4)
    n_keys = len(names)
    comparisons = [by_key.get(k, []) for k in range(n_keys)]
    kc_start, c_atom = _csr([[a for a, _, _ in c] for c in comparisons])
    c_op = np.array([op for c in comparisons for _, op, _ in c], dtype=np.uint8)
    c_lit, c_lit_off = _blob([lit for c in comparisons for _, _, lit in c])
    kr_start, kr_rule = _csr([readers.get(k, []) for k in range(n_keys)])
    prog_start, prog = _csr(programs)
    rule_keys: dict[int, list[int]] = defaultdict(list)
    for sid, key in book.rule_keys:
        rule_keys[sid - lo].append(keys[key])
    if any(not 0 <= s < len(status) for s in rule_keys) or any(not 0 <= sid - lo < len(status) for sid in book.complex_rules):
        return None
    rk_start, rk_key = _csr([rule_keys.get(i, []) for i in range(len(status))])
    return KvRules(
        keys_blob, keys_off, np.array([flags[k] for k in range(n_keys)] or [0], dtype=np.uint8), tok_blob, tok_off, tok_start,
        *(np.ascontiguousarray(atom_rows[:, j]) for j in range(4)),
        kc_start, c_atom, c_op if len(c_op) else np.zeros(1, np.uint8), c_lit, c_lit_off, kr_start, kr_rule,
        prog_start, prog, np.array(book.complex_rules or [0], dtype=np.int32), rk_start, rk_key,
        np.array(atom_key or [0], dtype=np.int32), np.array(atom_neg or [0], dtype=np.uint8),
        np.ascontiguousarray(status, dtype=np.uint8), int(lo),
    )


def merge_chunk(lines: pa.Table, rules, kind: int, ns: int, cap: int, count_devices: bool) -> ChunkMerge:
    """Merge the simple key-value profiles of one chunk (``lines``: ``file_idx, line_no,
    line, too_long, control``); ``ns``: their profiles' namespace (§1.8)."""
    data, offsets = binary_parts(lines.column("line").combine_chunks())
    skip = (lines.column("too_long").to_numpy(zero_copy_only=False) | lines.column("control").to_numpy(zero_copy_only=False))
    m = rules.merge(data, offsets[:-1], offsets[1:], skip.astype(np.uint8), kind, int(cap), bool(count_devices))
    simple = m["simple"]
    items, used, failed, realized = m["items"].astype(np.int64), m["used"], m["failed"], m["realized"]
    stored = simple & (realized > 0)  # no removal occurs on a simple key-value line
    counters, stored_lines = stored_counters(stored, lines.column("file_idx").to_numpy(), items, used, failed, realized)
    ids = pa.Array.from_buffers(pa.string(), len(m["id_offsets"]) - 1,
                                [None, pa.py_buffer(m["id_offsets"].astype(np.int32)), pa.py_buffer(m["ids"])])
    n_prof = len(m["simple_prof"])
    sid_off = m["offsets"]
    keep = m["simple_prof"] & (np.diff(sid_off) > 0)
    lists = pa.ListArray.from_arrays(pa.array(sid_off.astype(np.int32)), pa.array(m["sids"], pa.int32()))
    add_lists = pa.Table.from_arrays(
        [pa.array(np.full(n_prof, ns, dtype=np.int32)), ids.slice(0, n_prof), lists], schema=ADD_LIST_SCHEMA
    ).filter(pa.array(keep))
    empty = np.flatnonzero(simple & ~stored)
    no_trait = no_trait_rows(lines, empty, ns, ids.take(pa.array(m["line_prof"][empty])), items, used, failed)
    return ChunkMerge(
        simple=simple, add_lists=add_lists, adds=KEY_SCHEMA.empty_table(), removes=REMOVE_SCHEMA.empty_table(),
        first_removes=KEY_SCHEMA.empty_table(), removed_after_add=0, no_trait=no_trait, counters=counters,
        stored_lines=stored_lines, devices=m["devices"])
