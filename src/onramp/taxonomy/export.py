"""The store's taxonomy as a §11.2 YAML file (SPEC §11.1 ``taxonomy export``).

Built-in global device sources and optional fields at their defaults are left out, so
the output reads like a hand-written file; loading and applying it to an empty store
reproduces the taxonomy tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb
import yaml

from onramp.taxonomy.models import SECTIONS
from onramp.taxonomy.apply import read_rows
from onramp.formats.timestamps import naive_utc
from onramp.taxonomy.rows import row_fields

HEADER = "# Onramp taxonomy (SPEC §11.2), exported from the store.\n"

# Quoted in the output for readability: they usually contain quotes and operators.
EXPRESSION_FIELDS = {"rule", "expression"}


def export_taxonomy(con: duckdb.DuckDBPyConnection, *, now: datetime | None = None) -> str:
    """The current taxonomy as YAML. ``now`` decides whether error sampling is still on."""
    moment = naive_utc(now or datetime.now(UTC))
    stored = read_rows(con)
    document: dict[str, list[dict[str, Any]]] = {}
    for section, (model, _) in SECTIONS.items():
        entries = []
        for key in sorted(stored[section]):
            row = stored[section][key]
            if section == "data_sources" and row["is_global"]:
                continue
            fields = row_fields(section, row, moment)
            entries.append(
                {
                    name: _styled(name, fields[name])
                    for name, info in model.model_fields.items()
                    if fields.get(name) is not None and (info.is_required() or fields[name] != info.get_default())
                }
            )
        if entries:
            document[section] = entries
    if not document:
        return HEADER
    return HEADER + yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


class _Quoted(str):
    pass


def _styled(name: str, value: Any) -> Any:
    return _Quoted(value) if name in EXPRESSION_FIELDS else value


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Lists of scalars in flow style (``segments: [5001, 5002]``), the rest in block style.

    libyaml when available: the pure-Python emitter needs ~20 s for 25,000 traits."""


def _represent_list(dumper: Any, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(v, dict | list) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_quoted(dumper: Any, data: _Quoted) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style="'")


_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(_Quoted, _represent_quoted)
