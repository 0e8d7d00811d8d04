"""Entities ↔ store rows: the one place that knows how §11.2 fields map to columns.

Pure: ``apply.py`` and ``export.py`` do the reading and writing.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from onramp.taxonomy.models import (
    DESTINATION_SETTINGS,
    AccessMapping,
    DataSource,
    Destination,
    Entity,
    Partner,
    Segment,
    Trait,
)

Row = dict[str, Any]

# Section → (table, key columns, columns). Every column of each taxonomy table.
TABLES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "partners": ("partners", ("pid",), ("pid", "name", "contacts")),
    "data_sources": (
        "data_sources",
        ("dpid",),
        (
            "dpid",
            "owner_pid",
            "name",
            "id_type",
            "inbound_id_type",
            "id_definition",
            "integration_code",
            "notify",
            "error_sampling_until",
            "crm_retention_days",
            "is_global",
        ),
    ),
    "traits": (
        "traits",
        ("sid",),
        (
            "sid",
            "name",
            "description",
            "data_source",
            "type",
            "rule",
            "ttl_days",
            "integration_code",
            "folder_id",
            "data_category",
            "event_type",
        ),
    ),
    "segments": ("segments", ("sid",), ("sid", "name", "owner", "expression", "merge_rule")),
    "destinations": (
        "destinations",
        ("did",),
        (
            "did",
            "owner",
            "name",
            "master_dpid",
            "partner_dpid",
            "pid_alias",
            "sync_type",
            "sync_mode",
            "segments",
            "location",
            "settings",
        ),
    ),
    "access_mappings": ("access_mappings", ("pid", "dpid"), ("pid", "dpid")),
}


def row_key(section: str, row: Row) -> tuple[Any, ...]:
    return tuple(row[k] for k in TABLES[section][1])


def normalize(section: str, row: Row) -> Row:
    """A row as read from DuckDB, made comparable with :func:`entity_row` output."""
    if section == "destinations" and isinstance(row.get("settings"), str):
        return {**row, "settings": json.loads(row["settings"])}
    return row


def entity_row(section: str, entity: Entity, current: Row | None, now: datetime, sampling_days: int) -> Row:
    """The row an entity of the file stands for; ``current`` is the stored row, if any."""
    if isinstance(entity, DataSource):
        row = entity.model_dump(exclude={"owner", "error_sampling"})
        row["owner_pid"] = entity.owner
        row["is_global"] = False
        previous = current["error_sampling_until"] if current else None
        row["error_sampling_until"] = sampling_until(entity.error_sampling, previous, now, sampling_days)
        return row
    if isinstance(entity, Destination):
        row = entity.model_dump(exclude=set(DESTINATION_SETTINGS))
        settings = {k: getattr(entity, k) for k in DESTINATION_SETTINGS if getattr(entity, k) is not None}
        row["settings"] = settings or None
        return row
    assert isinstance(entity, Partner | Trait | Segment | AccessMapping)
    return entity.model_dump()


def sampling_until(flag: bool | None, current: datetime | None, now: datetime, days: int) -> datetime | None:
    """§7.4: sampling runs ``days`` from activation. Omitted keeps the state; true keeps an
    active period (so re-applying a file does not extend it) or starts a new one."""
    if flag is None:
        return current
    if not flag:
        return None
    if current is not None and current > now:
        return current
    return now + timedelta(days=days)


def row_fields(section: str, row: Row, now: datetime) -> dict[str, Any]:
    """The §11.2 fields of a stored row (every field, defaults included)."""
    row = normalize(section, row)
    if section == "data_sources":
        fields = {k: v for k, v in row.items() if k not in ("owner_pid", "is_global", "error_sampling_until")}
        fields["owner"] = row["owner_pid"]
        until = row["error_sampling_until"]
        fields["error_sampling"] = True if until is not None and until > now else None
        return fields
    if section == "destinations":
        fields = {k: v for k, v in row.items() if k != "settings"}
        fields.update(row["settings"] or {})
        return fields
    return dict(row)


def insert_verb(section: str) -> str:
    # Rows of a table whose key is every column (access mappings) are never "updated".
    _, keys, columns = TABLES[section]
    return "INSERT OR REPLACE" if keys != columns else "INSERT OR IGNORE"


def params(section: str, row: Row) -> list[Any]:
    """A row's values in column order, as the store takes them (settings as JSON text)."""
    values = []
    for column in TABLES[section][2]:
        value = row[column]
        values.append(json.dumps(value, sort_keys=True) if column == "settings" and value is not None else value)
    return values


