"""The taxonomy file's entities (SPEC §11.2), one pydantic model per YAML section.

The models check the shape of each entity and everything that can be decided from a
single field. Checks that need several entities (duplicates, references) live in
``validate.py``; the store is only read in ``apply.py``.

Strict mode on purpose: in YAML ``name: yes`` is a boolean and ``dpid: "21"`` a string,
and both are more likely mistakes than intent.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

MAX_ID = 2**31 - 1  # store columns are 32-bit INTEGER; D-01 accepts any DPID up to here
MAX_SPLIT_SIZE = 1024**4  # §8.1: default and ceiling 1 TB

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
PID_ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

# §11.2 values of each enumerated field, in documentation order.
ID_TYPES = ("cookie", "cross_device", "device_advertising_id")
INBOUND_ID_TYPES = ("customer_id", "platform_uuid")
ID_DEFINITIONS = ("person", "household")
TRAIT_TYPES = ("onboarded", "rule_based")
MERGE_RULES = ("device_only", "device_and_authenticated")
SYNC_TYPES = ("s3", "ftp", "http")
SYNC_MODES = ("full", "iter")

# Where each sync type delivers (§8.1, §11.2): "ftp" means SFTP.
LOCATION_SCHEMES = {"s3": ("s3://",), "ftp": ("sftp://",), "http": ("https://", "http://")}


def problem(message: str, hint: str | None = None) -> PydanticCustomError:
    """A field error carrying our own message and fix hint (read back in ``load.py``)."""
    return PydanticCustomError("onramp", "{message}", {"message": message, "hint": hint})


def _lower(value: Any) -> Any:
    # Enumerations are case-insensitive: SPEC §1.2 writes them upper-case, §11.2 lower-case.
    return value.lower() if isinstance(value, str) else value


def _slug(value: str) -> str:
    if not SLUG_RE.match(value):
        raise problem(
            f"partner name {value!r} is not a slug",
            "use lower-case letters, digits, '_' and '-', starting with a letter or digit "
            "(it becomes the S3 prefix and the FTP user)",
        )
    return value


def _email(value: str) -> str:
    if not EMAIL_RE.match(value):
        raise problem(f"{value!r} is not an email address", "write it as name@example.com")
    return value


def _no_controls(value: str) -> str:
    if "\t" in value:
        raise problem("name contains a TAB", "remove the TAB; names travel in tab-separated files [D-40]")
    if CONTROL_RE.search(value):
        raise problem("name contains a control character", "remove line breaks and other control characters")
    return value


def _inbound_id_type(value: Any) -> Any:
    if isinstance(value, str) and value.lower() == "ecid":
        raise problem(
            "inbound ID type 'ecid' is not supported [D-02]",
            "use customer_id (partner user IDs) or platform_uuid (38-digit platform IDs)",
        )
    return _lower(value)


def _pid_alias(value: str) -> str:
    if not PID_ALIAS_RE.match(value):
        raise problem(
            f"pid_alias {value!r} may only contain letters, digits and inner '-'",
            "it is part of outbound file names (§8.2), where '_' and '.' separate fields",
        )
    return value


Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Dpid = Annotated[int, Field(ge=1, le=MAX_ID)]
Email = Annotated[str, AfterValidator(_email)]
Name = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_no_controls)]
Text = Annotated[str, Field(min_length=1)]


def _choice(values: tuple[str, ...]) -> Any:
    return Annotated[Literal[values], BeforeValidator(_lower)]  # type: ignore[valid-type]


IdType = _choice(ID_TYPES)
IdDefinition = _choice(ID_DEFINITIONS)
TraitType = _choice(TRAIT_TYPES)
MergeRule = _choice(MERGE_RULES)
SyncType = _choice(SYNC_TYPES)
SyncMode = _choice(SYNC_MODES)
InboundIdType = Annotated[Literal[INBOUND_ID_TYPES], BeforeValidator(_inbound_id_type)]  # type: ignore[valid-type]
PidAlias = Annotated[str, AfterValidator(_pid_alias)]


class Entity(BaseModel):
    """Base of every section's entity: unknown keys are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Partner(Entity):
    pid: Id
    name: Annotated[str, AfterValidator(_slug)]
    contacts: list[Email] = []


class DataSource(Entity):
    dpid: Dpid
    owner: Id
    name: Name
    id_type: IdType
    inbound_id_type: InboundIdType
    id_definition: IdDefinition | None = None
    integration_code: Text | None = None
    notify: list[Email] = []
    crm_retention_days: Annotated[int, Field(ge=30, le=1825)] = 720
    # Omitted = leave the current state alone; true = on for 14 days (§7.4); false = off.
    error_sampling: bool | None = None


class Trait(Entity):
    sid: Id
    name: Name
    description: str | None = None
    data_source: Annotated[int, Field(ge=0, le=MAX_ID)]  # 0 gets a specific error in validate.py
    type: TraitType
    rule: Text | None = None
    ttl_days: Annotated[int, Field(ge=0, le=36_500)] = 120  # D-41
    integration_code: Text | None = None
    folder_id: Id | None = None
    data_category: Text | None = None
    event_type: Text | None = None


class Segment(Entity):
    sid: Id
    name: Name
    owner: Id
    expression: Text
    merge_rule: MergeRule = "device_and_authenticated"


class Destination(Entity):
    did: Id
    owner: Id
    name: Name
    master_dpid: Annotated[int, Field(ge=0, le=MAX_ID)] = 0
    partner_dpid: Dpid | None = None
    pid_alias: PidAlias | None = None
    sync_type: SyncType
    sync_mode: SyncMode
    segments: list[Id] = []
    location: Text
    file_name_template: Text | None = None
    header_template: Text | None = None
    content_template: Text | None = None
    compress: bool | None = None
    split_size: Annotated[int, Field(ge=1, le=MAX_SPLIT_SIZE)] | None = None


# Destination fields stored together in the ``destinations.settings`` JSON column.
DESTINATION_SETTINGS = ("file_name_template", "header_template", "content_template", "compress", "split_size")


class AccessMapping(Entity):
    """Second-party onboarding (§3.2.2): partner ``pid`` may write traits of ``dpid``."""

    pid: Id
    dpid: Dpid


class Taxonomy(Entity):
    partners: list[Partner] = []
    data_sources: list[DataSource] = []
    traits: list[Trait] = []
    segments: list[Segment] = []
    destinations: list[Destination] = []
    access_mappings: list[AccessMapping] = []


# Section name → entity model and key fields, in file order. Drives loading, validation,
# apply and export alike.
SECTIONS: dict[str, tuple[type[Entity], tuple[str, ...]]] = {
    "partners": (Partner, ("pid",)),
    "data_sources": (DataSource, ("dpid",)),
    "traits": (Trait, ("sid",)),
    "segments": (Segment, ("sid",)),
    "destinations": (Destination, ("did",)),
    "access_mappings": (AccessMapping, ("pid", "dpid")),
}
