"""Reading a taxonomy file (SPEC §11.2): YAML text → :class:`Taxonomy` plus warnings.

Every problem of the file is collected and raised at once as a :class:`TaxonomyError`,
each located by a path into the file (``traits[3].rule``, 0-based) or, for YAML syntax,
by ``line N``. Each item is validated on its own, so one broken item does not hide the
problems of the others.
"""

from __future__ import annotations

import difflib
from importlib import resources
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from onramp.errors import Problem, TaxonomyError
from onramp.taxonomy.models import SECTIONS, Entity, Taxonomy
from onramp.taxonomy.validate import ROOT, check_file, expression_problem, rule_problem, sort_problems

# Field hints for pydantic's range and length errors, by field name.
FIELD_HINTS = {
    "pid": "IDs are integers from 1 to 2147483647",
    "dpid": "DPIDs are integers from 1 to 2147483647 [D-01]",
    "sid": "IDs are integers from 1 to 2147483647",
    "did": "IDs are integers from 1 to 2147483647",
    "owner": "use the pid of the owning partner",
    "data_source": "use the dpid of the owning data source",
    "master_dpid": "0 means platform UUIDs; otherwise a DPID",
    "crm_retention_days": "accepted range is 30 to 1825 days; default 720",
    "ttl_days": "accepted range is 0 to 36500 days; 0 = never expires [D-41]",
    "split_size": "bytes per part, at most 1 TB",
}


def load_taxonomy(text: str) -> tuple[Taxonomy, list[Problem]]:
    """Parse and validate a taxonomy file; return it with its warnings (D-40).

    Raises :class:`TaxonomyError` listing every problem found. References to entities
    outside the file are checked later, against the store, by ``apply_taxonomy``.
    """
    problems: list[Problem] = []  # duplicate YAML keys land here and do not stop loading
    document = _parse_yaml(text, problems)
    if document is _BROKEN:
        raise TaxonomyError(problems)
    if document is None:
        document = {}  # an empty file (or only comments) is an empty taxonomy
    if not isinstance(document, dict):
        problems.append(
            Problem(ROOT, "the file must be a mapping of sections", f"start with one of: {', '.join(SECTIONS)}")
        )
        raise TaxonomyError(sort_problems(problems))

    items: dict[str, list[tuple[int, Entity]]] = {section: [] for section in SECTIONS}
    for key, value in document.items():
        if key not in SECTIONS:
            problems.append(_unknown_key(str(key), str(key), SECTIONS))
            continue
        if value is None:
            continue  # an empty section ("traits:" with nothing under it)
        if not isinstance(value, list):
            problems.append(Problem(key, "must be a list", f"write one '- ...' item per entry under {key}:"))
            continue
        model = SECTIONS[key][0]
        for i, raw in enumerate(value):
            path = f"{key}[{i}]"
            problems += _expression_problems(key, path, raw)
            try:
                items[key].append((i, model.model_validate(raw)))
            except ValidationError as e:
                problems += [_problem(path, model, err) for err in e.errors()]

    file_problems, warnings = check_file(items)
    problems += file_problems
    if problems:
        raise TaxonomyError(sort_problems(problems))
    taxonomy = Taxonomy(**{section: [entity for _, entity in entries] for section, entries in items.items()})
    return taxonomy, sort_problems(warnings)


def demo_taxonomy_text() -> str:
    """The demo taxonomy shipped with the package (used by ``onramp demo``)."""
    return resources.files("onramp.taxonomy").joinpath("demo.yaml").read_text(encoding="utf-8")


# --- YAML ------------------------------------------------------------------------------


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe loader (libyaml when available: ~10x faster on big taxonomies) that reports
    duplicate keys instead of keeping the last one."""

    duplicates: list[Problem]


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, str | int) and key in seen:
            loader.duplicates.append(
                Problem(
                    f"line {key_node.start_mark.line + 1}",
                    f"duplicate key {key!r} in one mapping",
                    "give each key once; the second would silently replace the first",
                )
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


_BROKEN = object()  # the YAML did not parse


def _parse_yaml(text: str, problems: list[Problem]) -> Any:
    """The document, or ``_BROKEN`` after appending the syntax problem to ``problems``."""
    loader = _Loader(text)
    loader.duplicates = problems
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as e:
        del problems[:]  # duplicate keys seen before the syntax error are noise now
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}" if mark is not None else ROOT
        column = f" at column {mark.column + 1}" if mark is not None else ""
        message = f"YAML syntax: {e.problem or e.context}{column}"
        problems.append(
            Problem(where, message, "check indentation and quote values that contain ': ', '#', '{' or '['")
        )
    except yaml.YAMLError as e:
        problems.append(Problem(ROOT, f"YAML syntax: {e}", "check the file is valid YAML"))
    finally:
        loader.dispose()
    return _BROKEN


# --- problems --------------------------------------------------------------------------


def _expression_problems(section: str, path: str, raw: Any) -> list[Problem]:
    # Parsed from the raw item so a syntax error shows even when other fields are invalid.
    if not isinstance(raw, dict):
        return []
    if section == "traits" and isinstance(raw.get("rule"), str) and raw["rule"]:
        p = rule_problem(f"{path}.rule", raw["rule"])
        return [p] if p else []
    if section == "segments" and isinstance(raw.get("expression"), str) and raw["expression"]:
        p = expression_problem(f"{path}.expression", raw["expression"])
        return [p] if p else []
    return []


def loc_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    """``("contacts", 1)`` under ``partners[0]`` → ``partners[0].contacts[1]``."""
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _problem(prefix: str, model: type[Entity], err: ErrorDetails) -> Problem:
    loc = tuple(err["loc"])
    path = loc_path(prefix, loc)
    field = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
    kind = err["type"]
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    value = err.get("input")
    if kind == "onramp":
        return Problem(path, ctx["message"], ctx.get("hint"))
    if kind == "extra_forbidden":
        return _unknown_key(path, str(loc[-1]), model.model_fields)
    if kind == "missing":
        return Problem(path, f"{field} is required", f"add '{field}: ...' to this entry")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        fields = ", ".join(model.model_fields)
        return Problem(path, "must be a mapping of keys to values", f"write one 'key: value' per line; keys: {fields}")
    if kind == "literal_error":
        return Problem(path, f"{value!r} is not one of {ctx['expected']}", f"write one of {ctx['expected']}")
    if kind == "int_type":
        hint = "remove the quotes" if isinstance(value, str) and value.strip().isdigit() else "write a whole number"
        return Problem(path, f"must be an integer, not {_shown(value)}", hint)
    if kind == "string_type":
        hint = "quote the value; YAML reads bare yes/no/true/false as booleans and bare digits as numbers"
        return Problem(path, f"must be a string, not {_shown(value)}", hint)
    if kind == "bool_type":
        return Problem(path, f"must be true or false, not {_shown(value)}", f"write {field}: true or {field}: false")
    if kind == "list_type":
        return Problem(path, f"must be a list, not {_shown(value)}", f"write {field}: [a, b] or one '- item' per line")
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        return Problem(path, f"{value} is too small (minimum {bound})", FIELD_HINTS.get(field))
    if kind in ("less_than_equal", "less_than"):
        bound = ctx.get("le", ctx.get("lt"))
        return Problem(path, f"{value} is too large (maximum {bound})", FIELD_HINTS.get(field))
    if kind == "string_too_short":
        info = model.model_fields.get(field)
        optional = info is not None and not info.is_required()
        return Problem(path, "must not be empty", f"write a value or remove '{field}'" if optional else "write a value")
    if kind == "string_too_long":
        return Problem(path, f"{len(value)} characters, at most {ctx['max_length']} allowed", "shorten it")
    return Problem(path, err["msg"])


def _shown(value: Any) -> str:
    kind = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "a mapping"}
    return f"{kind.get(type(value), type(value).__name__)} ({value!r})" if value is not None else "empty"


def _unknown_key(path: str, key: str, valid: Any) -> Problem:
    names = list(valid)
    close = difflib.get_close_matches(key, names, n=1) or [n for n in names if n.startswith(key)][:1]
    hint = f"did you mean '{close[0]}'? " if close else ""
    return Problem(path, f"unknown key '{key}'", f"{hint}valid keys: {', '.join(names)}")
