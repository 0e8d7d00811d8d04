"""File admission (SPEC §3.2.2, §3.3 check 1–2): name, uploader, authorization, grouping.

Decides, before any content is read, which files may be processed, on whose behalf,
into which receipt group, and how column-1 IDs map to profiles. Pure over a taxonomy
snapshot so every rule is unit-testable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from onramp.engine.data_plan import ID_CROSS_DEVICE, ID_DEVICE, ID_DEVICE_LEVEL, ID_PLATFORM_UUID
from onramp.errors import FileRejected, InvalidFileName
from onramp.formats.ids import GLOBAL_DEVICE_SOURCES
from onramp.formats.names import DataFileName, SyncFileName, parse_file_name


@dataclass(frozen=True)
class SourceInfo:
    dpid: int
    owner_pid: int | None
    id_type: str
    inbound_id_type: str
    is_global: bool


@dataclass(frozen=True)
class TaxonomySnapshot:
    partners: frozenset[int]
    sources: dict[int, SourceInfo]
    mappings: frozenset[tuple[int, int]]

    def may_write(self, pid: int, dpid: int) -> bool:
        src = self.sources.get(dpid)
        return src is not None and (src.owner_pid == pid or (pid, dpid) in self.mappings)


@dataclass
class Candidate:
    """One file handed to a job, with everything admission decided about it."""

    path: Path
    uri: str
    size: int
    name: DataFileName | SyncFileName | None = None
    partner: int | None = None
    id_kind: str | None = None
    rejected: str | None = None  # receipt reason when rejected before reading content
    hint: str | None = None
    sha256: str | None = None
    duplicate: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def is_sync(self) -> bool:
        return isinstance(self.name, SyncFileName)

    def group_key(self) -> tuple:
        """Receipt grouping (§6.1, D-49): (kind, uploader PID, file DPID, target DPID)."""
        if self.name is None:
            return ("rejected_files", None, None, None)
        if isinstance(self.name, SyncFileName):
            return ("id_sync", self.partner, self.name.dpids[0], self.name.dpids[1])
        return ("data", self.partner, self.name.dpid, self.name.target if self.name.target is not None else self.name.dpid)

    def order_key(self) -> tuple:
        """§3.8.4: sync files first, then data files by (timestamp, base name, split)."""
        if self.name is None:
            return (2, 0, self.path.name, 0)
        return (0 if self.is_sync else 1, self.name.timestamp, self.name.base_name, self.name.split or 0)


def admit(path: Path, uri: str, size: int, snapshot: TaxonomySnapshot, *, partner: int | None, accept_short_timestamp: bool,
          unreadable: FileRejected | None = None) -> Candidate:
    """``unreadable``: why the drop zone could not give the file's bytes (an S3 object without
    bucket-owner-full-control, §3.1). It rejects the file like a container error, but only
    after the name and authorization checks, which need no content and so come first (§3.3)."""
    cand = Candidate(path=path, uri=uri, size=size)
    try:
        cand.name = parse_file_name(path.name, accept_short_timestamp=accept_short_timestamp)
    except InvalidFileName as exc:
        cand.rejected, cand.hint = f"invalid file name: {exc.message}", exc.hint
        return cand
    if isinstance(cand.name, SyncFileName):
        _admit_sync(cand, cand.name, snapshot, partner)
    else:
        _admit_data(cand, cand.name, snapshot, partner)
    if unreadable is not None and cand.rejected is None:
        cand.rejected, cand.hint = unreadable.message, unreadable.hint
    return cand


def _reject(cand: Candidate, reason: str, hint: str) -> Candidate:
    cand.rejected, cand.hint = reason, hint
    return cand


def _admit_data(cand: Candidate, name: DataFileName, snap: TaxonomySnapshot, partner: int | None) -> Candidate:
    owner = name.owner_dpid
    owner_src = snap.sources.get(owner)
    cand.partner = partner if partner is not None else (owner_src.owner_pid if owner_src else None)
    if partner is not None and partner not in snap.partners:
        return _reject(cand, f"partner {partner} does not exist", "declare the partner in the taxonomy first")
    if not name.odc and name.dpid in GLOBAL_DEVICE_SOURCES and name.target is None:
        return _reject(cand, f"global device data source {name.dpid} needs a target data source",
                       f"name the file ftp_dpm_{name.dpid}_<your data source>_<timestamp>.{name.mode}")
    if owner_src is None:
        return _reject(cand, f"data source {owner} does not exist", "declare it in the taxonomy, or fix the DPID in the file name")
    if owner_src.is_global:
        return _reject(cand, f"data source {owner} is a global device source and owns no traits",
                       "put your own data source as the target: ftp_dpm_<device DPID>_<your DPID>_...")
    if cand.partner is None:
        return _reject(cand, "cannot tell the uploading partner", "pass --partner PID")
    if not snap.may_write(cand.partner, owner):
        return _reject(cand, f"partner {cand.partner} may not write data source {owner}",
                       "upload from the owner's drop zone, or ask an administrator for an access mapping")
    if name.odc:
        cand.id_kind = ID_DEVICE
        return cand
    col1 = snap.sources.get(name.dpid)
    if col1 is None:
        return _reject(cand, f"data source {name.dpid} does not exist", "fix the DPID in the file name")
    if not col1.is_global and not snap.may_write(cand.partner, name.dpid):
        return _reject(cand, f"partner {cand.partner} may not send IDs of data source {name.dpid}",
                       "use a data source you own, or ask for an access mapping")
    if col1.is_global:
        cand.id_kind = ID_DEVICE
    elif col1.inbound_id_type == "platform_uuid":
        cand.id_kind = ID_PLATFORM_UUID
    elif col1.id_type == "cross_device":
        cand.id_kind = ID_CROSS_DEVICE
    else:
        cand.id_kind = ID_DEVICE_LEVEL
    return cand


def _admit_sync(cand: Candidate, name: SyncFileName, snap: TaxonomySnapshot, partner: int | None) -> Candidate:
    customer = [d for d in name.dpids if d != 0 and d not in GLOBAL_DEVICE_SOURCES]
    first_owner = snap.sources[customer[0]].owner_pid if customer and customer[0] in snap.sources else None
    cand.partner = partner if partner is not None else first_owner
    if partner is not None and partner not in snap.partners:
        return _reject(cand, f"partner {partner} does not exist", "declare the partner in the taxonomy first")
    for d in customer:
        if d not in snap.sources:
            return _reject(cand, f"data source {d} does not exist", "fix the DPIDs in the file name")
    if cand.partner is None:
        return _reject(cand, "cannot tell the uploading partner", "pass --partner PID")
    for d in customer:
        if not snap.may_write(cand.partner, d):
            return _reject(cand, f"partner {cand.partner} may not write data source {d}",
                           "sync only IDs of data sources you own or are mapped to")
    if name.prefix == "adobe_id_" and name.dpids[0] in customer:
        # D-15: accepted and resolved transitively, but the documentation asks for device masters.
        cand.warnings.append(f"master column holds customer IDs of data source {name.dpids[0]}; they are linked and resolved transitively (D-15)")
    return cand
