"""Request and response bodies of the REST API (they make its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from onramp.formats.timestamps import iso_z
from onramp.taxonomy.models import EMAIL_RE, MAX_ID

Env = Literal["prod", "beta"]


def _iso(ts: datetime) -> str:
    # The store keeps naive UTC; the API speaks ISO 8601 with Z like the CLI (SPEC §11.1).
    return iso_z(ts)


UtcTime = Annotated[datetime, PlainSerializer(_iso, return_type=str, when_used="json")]
EmailAddress = Annotated[str, Field(pattern=EMAIL_RE.pattern, max_length=254, examples=["crm-team@acme.example"])]


class ErrorDetail(BaseModel):
    message: str
    hint: str | None = None


class ErrorBody(BaseModel):
    detail: ErrorDetail


class NotFoundBody(BaseModel):
    """404: ours carry a hint; a path matching no route gets FastAPI's plain-string detail."""

    detail: ErrorDetail | str


class BadRequestBody(BaseModel):
    """400: a body that is not JSON at all (FastAPI's own answer has a plain-string detail)."""

    detail: ErrorDetail | str


class TaxonomyProblem(BaseModel):
    path: str = Field(description="Where in the file, e.g. `traits[3].rule`.")
    message: str
    hint: str | None = None


class TaxonomyErrorDetail(ErrorDetail):
    problems: list[TaxonomyProblem]


class TaxonomyErrorBody(BaseModel):
    detail: TaxonomyErrorDetail


class SectionCounts(BaseModel):
    created: int
    updated: int
    unchanged: int


class TaxonomyApplied(BaseModel):
    applied: dict[str, SectionCounts] = Field(description="Per section of the file.")
    created: int
    updated: int
    unchanged: int
    warnings: list[str]


class ReceiptFile(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    uri: str
    status: str
    reason: str | None = None
    duplicate: bool = False


class ReceiptObject(BaseModel):
    """The §11.3 receipt object; counters depend on ``kind`` (data or ID-sync receipts)."""

    model_config = ConfigDict(extra="allow")
    receipt_id: str
    kind: str
    partner: int | None
    dpid: int | None
    target_dpid: int | None
    environment: str
    files: list[ReceiptFile]
    job_start: str
    job_end: str
    rejects: str | None = Field(None, description="Reject file path in the data directory; fetch it from `/rejects`.")


class ProfileKey(BaseModel):
    dpid: int
    id: str


class ProfileTrait(BaseModel):
    sid: int
    data_source: int
    realized_at: UtcTime
    expires_at: UtcTime | None


class MergedTrait(ProfileTrait):
    via: ProfileKey = Field(description="The linked customer profile the trait comes from.")


class ProfileLink(BaseModel):
    dpid: int
    id: str
    last_seen: UtcTime


class ProfileSegment(BaseModel):
    sid: int
    since: UtcTime | None


class Profile(BaseModel):
    """SPEC §11.1 `profile --json`; partner tokens see only their own part (docs/api.md)."""

    profile: ProfileKey
    traits: list[ProfileTrait]
    merged_traits: list[MergedTrait] | None = None
    links: list[ProfileLink]
    segments: list[ProfileSegment]


class FileRecord(BaseModel):
    """One row of the file ledger: one processing of one file version."""

    env: str
    name: str
    sha256: str
    uri: str
    size: int
    status: str = Field(description="applied | rejected")
    reason: str | None
    job_id: str
    receipt_id: str | None
    processed_at: UtcTime


class ReprocessRequest(BaseModel):
    env: Env = "prod"
    name: str = Field(min_length=1, max_length=1024, description="File name as in the ledger.")
    sha256: str | None = Field(None, pattern="^[0-9a-f]{64}$", description="Which version; default the latest.")


class ReprocessResult(BaseModel):
    job_id: str
    receipts: list[ReceiptObject]


class ErrorSampling(BaseModel):
    enabled: bool
    until: UtcTime | None = Field(description="When sampling switches itself off (SPEC §7.4).")


class ErrorSamplingChange(BaseModel):
    enabled: bool = Field(description="true starts (or keeps) a sampling period; false stops it.")


class NotifyList(BaseModel):
    notify: list[EmailAddress] = Field(max_length=100, description="Recipients of this data source's receipts (§7.5).")


class DataSource(BaseModel):
    dpid: int
    owner: int | None
    name: str
    notify: list[str]
    error_sampling: ErrorSampling


class Health(BaseModel):
    status: Literal["ok"]


DpidPath = Annotated[int, Field(ge=1, le=MAX_ID)]
