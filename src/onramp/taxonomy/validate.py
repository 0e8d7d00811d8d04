"""Pure checks of a taxonomy: within the file, and against what already exists.

Nothing here touches the store: ``apply.py`` reads the store into a :class:`Known`
and passes it in, so the same checks run on a file alone or before an apply.
Every check appends a located :class:`Problem`; nothing stops at the first one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from onramp.errors import Problem, RuleSyntaxError
from onramp.formats.ids import GLOBAL_DEVICE_SOURCES, PLATFORM_UUID_DPID
from onramp.taxonomy.models import (
    LOCATION_SCHEMES,
    SECTIONS,
    AccessMapping,
    DataSource,
    Destination,
    Entity,
    Partner,
    Segment,
    Taxonomy,
    Trait,
)

# Section → [(index in the file, entity)]. Indices stay those of the file even when
# some items were invalid and left out, so paths point at the right item.
Indexed = Mapping[str, list[tuple[int, Entity]]]

ROOT = "file"  # the path of problems about the document as a whole

# D-40: characters trait names should avoid (TAB is rejected by the model instead).
AVOID_IN_TRAIT_NAMES = {",": "comma", "-": "dash", "\u2013": "dash", "\u2014": "dash", "|": "pipe"}


@dataclass(frozen=True)
class KnownDataSource:
    owner: int | None
    is_global: bool
    integration_code: str | None
    name: str = ""


@dataclass(frozen=True)
class Known:
    """The taxonomy outside the file (the store), reduced to what references need."""

    partners: Mapping[int, str] = field(default_factory=dict)  # pid → name
    data_sources: Mapping[int, KnownDataSource] = field(default_factory=dict)
    traits: Mapping[int, str] = field(default_factory=dict)  # sid → type
    segments: frozenset[int] = frozenset()

    @classmethod
    def builtin(cls) -> Known:
        """A store holding only the global device sources (§1.5)."""
        return cls(
            data_sources={
                f.dpid: KnownDataSource(None, True, f.integration_code, f.name) for f in GLOBAL_DEVICE_SOURCES.values()
            }
        )


def indexed(taxonomy: Taxonomy) -> Indexed:
    return {section: list(enumerate(getattr(taxonomy, section))) for section in SECTIONS}


def _items(items: Indexed, section: str) -> list[tuple[int, Entity]]:
    return list(items.get(section, ()))


# --- expressions -------------------------------------------------------------------


def rule_problem(path: str, text: str) -> Problem | None:
    """Syntax of a trait rule (§4.3)."""
    from onramp.rules.parser import parse_trait_rule

    try:
        parse_trait_rule(text)
    except RuleSyntaxError as e:
        return _syntax(path, e)
    return None


def expression_problem(path: str, text: str) -> Problem | None:
    """Syntax of a segment expression (§5.1)."""
    from onramp.rules.segments import parse_segment_expression

    try:
        parse_segment_expression(text)
    except RuleSyntaxError as e:
        return _syntax(path, e)
    return None


def _syntax(path: str, e: RuleSyntaxError) -> Problem:
    return Problem(path, f"{e.message} at column {e.column}", e.hint)


def check_expressions(items: Indexed) -> list[Problem]:
    problems: list[Problem] = []
    for i, t in _items(items, "traits"):
        assert isinstance(t, Trait)
        if t.rule is not None and (p := rule_problem(f"traits[{i}].rule", t.rule)):
            problems.append(p)
    for i, s in _items(items, "segments"):
        assert isinstance(s, Segment)
        if p := expression_problem(f"segments[{i}].expression", s.expression):
            problems.append(p)
    return problems


# --- within the file -----------------------------------------------------------------


def check_file(items: Indexed) -> tuple[list[Problem], list[Problem]]:
    """Checks needing several fields or items of the file. Returns (problems, warnings)."""
    problems = _duplicates(items)
    warnings: list[Problem] = []
    for i, d in _items(items, "data_sources"):
        assert isinstance(d, DataSource)
        if d.id_definition is not None and d.id_type != "cross_device":
            problems.append(
                Problem(
                    f"data_sources[{i}].id_definition",
                    f"id_definition only applies to cross_device data sources, this one is {d.id_type}",
                    "remove id_definition or set id_type: cross_device",
                )
            )
    for i, t in _items(items, "traits"):
        assert isinstance(t, Trait)
        if t.type == "rule_based" and t.rule is None:
            problems.append(
                Problem(
                    f"traits[{i}].rule",
                    "a rule_based trait needs a rule",
                    "add rule: 'key == \"value\"' (§4.3), or make it type: onboarded to realize it by d_sid only",
                )
            )
        avoided = sorted({AVOID_IN_TRAIT_NAMES[c] for c in t.name if c in AVOID_IN_TRAIT_NAMES})
        if avoided:
            warnings.append(
                Problem(
                    f"traits[{i}].name",
                    f"name {t.name!r} contains {' and '.join(a + 'es' if a == 'dash' else a + 's' for a in avoided)}",
                    "they cause trouble in file-based exchanges; accepted anyway [D-40]",
                )
            )
    for i, dest in _items(items, "destinations"):
        assert isinstance(dest, Destination)
        schemes = LOCATION_SCHEMES[dest.sync_type]
        if not dest.location.startswith(schemes):
            problems.append(
                Problem(
                    f"destinations[{i}].location",
                    f"location {dest.location!r} does not fit sync_type {dest.sync_type}",
                    f"write a location starting with {' or '.join(schemes)}",
                )
            )
        seen: set[int] = set()
        for j, sid in enumerate(dest.segments):
            if sid in seen:
                problems.append(
                    Problem(f"destinations[{i}].segments[{j}]", f"segment {sid} is listed twice", "list each segment once")
                )
            seen.add(sid)
    return problems, warnings


def _duplicates(items: Indexed) -> list[Problem]:
    problems: list[Problem] = []
    for section, (_, keys) in SECTIONS.items():
        first: dict[tuple[int, ...], int] = {}
        for i, entity in _items(items, section):
            key = tuple(getattr(entity, k) for k in keys)
            if key in first:
                shown = " ".join(f"{k} {v}" for k, v in zip(keys, key))
                path = f"{section}[{i}].{keys[0]}" if len(keys) == 1 else f"{section}[{i}]"
                problems.append(
                    Problem(
                        path,
                        f"duplicate {shown}: already declared at {section}[{first[key]}]",
                        "remove the repeated entry"
                        if len(keys) > 1
                        else f"each {keys[0]} may appear once per file; merge the two entries or renumber one",
                    )
                )
            else:
                first[key] = i
    return problems


# --- against the store -----------------------------------------------------------------


def check_references(items: Indexed, known: Known) -> list[Problem]:
    """Every reference must resolve in the file or the store (the file wins for the same key)."""
    partners = dict(known.partners)
    data_sources = dict(known.data_sources)
    traits = dict(known.traits)
    segments = set(known.segments)
    for _, p in _items(items, "partners"):
        assert isinstance(p, Partner)
        partners[p.pid] = p.name
    for _, d in _items(items, "data_sources"):
        assert isinstance(d, DataSource)
        if not (d.dpid in data_sources and data_sources[d.dpid].is_global):
            data_sources[d.dpid] = KnownDataSource(d.owner, False, d.integration_code, d.name)
    for _, t in _items(items, "traits"):
        assert isinstance(t, Trait)
        traits[t.sid] = t.type
    segments.update(s.sid for _, s in _items(items, "segments"))  # type: ignore[attr-defined]
    globals_ = {dpid: ds for dpid, ds in data_sources.items() if ds.is_global}

    problems: list[Problem] = []
    problems += _unique_partner_names(items, known)
    problems += _data_source_refs(items, known, partners, globals_)
    problems += _trait_refs(items, data_sources)
    problems += _segment_refs(items, partners, traits)
    problems += _destination_refs(items, partners, data_sources, segments)
    problems += _mapping_refs(items, partners, data_sources)
    return problems


def _missing_partner(path: str, pid: int) -> Problem:
    return Problem(path, f"partner {pid} does not exist", "declare it under partners: or use an existing pid")


def _missing_data_source(path: str, dpid: int) -> Problem:
    return Problem(path, f"data source {dpid} does not exist", "declare it under data_sources: or use an existing dpid")


def _unique_partner_names(items: Indexed, known: Known) -> list[Problem]:
    redeclared = {p.pid for _, p in _items(items, "partners")}  # type: ignore[attr-defined]
    owner_of = {name: pid for pid, name in known.partners.items() if pid not in redeclared}
    problems = []
    for i, p in _items(items, "partners"):
        assert isinstance(p, Partner)
        other = owner_of.setdefault(p.name, p.pid)
        if other != p.pid:
            problems.append(
                Problem(
                    f"partners[{i}].name",
                    f"name {p.name!r} is already used by partner {other}",
                    "partner names are S3 prefixes and FTP users and must be unique; choose another",
                )
            )
    return problems


def _data_source_refs(
    items: Indexed, known: Known, partners: Mapping[int, str], globals_: Mapping[int, KnownDataSource]
) -> list[Problem]:
    problems = []
    redeclared = {d.dpid for _, d in _items(items, "data_sources")}  # type: ignore[attr-defined]
    code_of = {
        ds.integration_code: dpid
        for dpid, ds in known.data_sources.items()
        if ds.integration_code is not None and (dpid not in redeclared or ds.is_global)
    }
    for i, d in _items(items, "data_sources"):
        assert isinstance(d, DataSource)
        if d.dpid in globals_:
            problems.append(
                Problem(
                    f"data_sources[{i}].dpid",
                    f"DPID {d.dpid} is the global device source {globals_[d.dpid].name!r}",
                    "global device sources are built in (§1.5); remove this entry or choose another dpid",
                )
            )
            continue
        if d.owner not in partners:
            problems.append(_missing_partner(f"data_sources[{i}].owner", d.owner))
        if d.integration_code is not None:
            other = code_of.setdefault(d.integration_code, d.dpid)
            if other != d.dpid:
                problems.append(
                    Problem(
                        f"data_sources[{i}].integration_code",
                        f"integration code {d.integration_code!r} is already used by data source {other}",
                        "integration codes stand for a DPID in d_cid_ic and must be unique; choose another",
                    )
                )
    return problems


def _trait_refs(items: Indexed, data_sources: Mapping[int, KnownDataSource]) -> list[Problem]:
    problems = []
    for i, t in _items(items, "traits"):
        assert isinstance(t, Trait)
        path = f"traits[{i}].data_source"
        if t.data_source == PLATFORM_UUID_DPID:
            problems.append(
                Problem(path, "DPID 0 stands for platform UUIDs and owns no traits", "use the DPID of a partner data source")
            )
        elif t.data_source not in data_sources:
            problems.append(_missing_data_source(path, t.data_source))
        elif data_sources[t.data_source].is_global:
            problems.append(
                Problem(
                    path,
                    f"global device source {t.data_source} cannot own traits",
                    f"use a partner data source; files of device IDs name it as target (ftp_dpm_{t.data_source}_<dpid>_...)",
                )
            )
    return problems


def _segment_refs(items: Indexed, partners: Mapping[int, str], traits: Mapping[int, str]) -> list[Problem]:
    from onramp.rules.segments import parse_segment_expression, segment_trait_ids, validate_segment

    problems = []
    for i, s in _items(items, "segments"):
        assert isinstance(s, Segment)
        if s.owner not in partners:
            problems.append(_missing_partner(f"segments[{i}].owner", s.owner))
        path = f"segments[{i}].expression"
        try:
            expr = parse_segment_expression(s.expression)
        except RuleSyntaxError:
            continue  # reported by check_expressions
        missing = sorted(set(segment_trait_ids(expr)) - traits.keys())
        for sid in missing:
            problems.append(
                Problem(path, f"trait {sid} does not exist", "declare it under traits: or fix the trait ID")
            )
        if not missing:
            problems += [Problem(path, message) for message in validate_segment(expr, traits)]
    return problems


def _destination_refs(
    items: Indexed, partners: Mapping[int, str], data_sources: Mapping[int, KnownDataSource], segments: Iterable[int]
) -> list[Problem]:
    known_segments = set(segments)
    problems = []
    for i, d in _items(items, "destinations"):
        assert isinstance(d, Destination)
        if d.owner not in partners:
            problems.append(_missing_partner(f"destinations[{i}].owner", d.owner))
        if d.master_dpid != PLATFORM_UUID_DPID and d.master_dpid not in data_sources:
            problems.append(
                Problem(
                    f"destinations[{i}].master_dpid",
                    f"data source {d.master_dpid} does not exist",
                    "use 0 (platform UUIDs), a global device DPID or a declared data source",
                )
            )
        if d.partner_dpid is not None and d.partner_dpid not in data_sources:
            problems.append(_missing_data_source(f"destinations[{i}].partner_dpid", d.partner_dpid))
        for j, sid in enumerate(d.segments):
            if sid not in known_segments:
                problems.append(
                    Problem(
                        f"destinations[{i}].segments[{j}]",
                        f"segment {sid} does not exist",
                        "declare it under segments: or fix the segment ID",
                    )
                )
    return problems


def _mapping_refs(
    items: Indexed, partners: Mapping[int, str], data_sources: Mapping[int, KnownDataSource]
) -> list[Problem]:
    problems = []
    for i, m in _items(items, "access_mappings"):
        assert isinstance(m, AccessMapping)
        if m.pid not in partners:
            problems.append(_missing_partner(f"access_mappings[{i}].pid", m.pid))
        if m.dpid not in data_sources:
            problems.append(_missing_data_source(f"access_mappings[{i}].dpid", m.dpid))
        elif data_sources[m.dpid].is_global:
            problems.append(
                Problem(
                    f"access_mappings[{i}].dpid",
                    f"data source {m.dpid} is a global device source",
                    "global device sources are shared by all partners and need no mapping; map the target data source",
                )
            )
    return problems


# --- ordering ----------------------------------------------------------------------------

_PATH_PART = re.compile(r"\[(\d+)\]|\.?([A-Za-z_][A-Za-z0-9_]*)")


def sort_problems(problems: list[Problem]) -> list[Problem]:
    """Order problems as they appear in the file: sections, items, then fields."""
    return sorted(problems, key=lambda p: _path_key(p.path))


def _path_key(path: str) -> tuple[Any, ...]:
    if path == ROOT:
        return ((0, 0),)
    if path.startswith("line ") and path[5:].isdigit():
        return ((1, int(path[5:])),)
    key: list[tuple[int, Any]] = []
    model: type[Entity] | None = None
    for match in _PATH_PART.finditer(path):
        index, name = match.groups()
        if index is not None:
            key.append((0, int(index)))
        elif not key:
            section = list(SECTIONS).index(name) if name in SECTIONS else len(SECTIONS)
            model = SECTIONS[name][0] if name in SECTIONS else None
            key.append((2, section))
        else:
            fields = list(model.model_fields) if model else []
            key.append((1, fields.index(name) if name in fields else len(fields)))
    return tuple(key)
