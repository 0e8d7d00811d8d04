"""The typed settings table (SPEC Appendix B).

Loaded once, in a fixed order: explicit arguments, environment variables
(``ONRAMP_<SECTION>__<KEY>``), the TOML file (``--config`` / ``ONRAMP_CONFIG``),
then the defaults below. Every field has a description; ``docs/settings.md`` is
generated from this table and a test fails when the two drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

GiB = 1024**3


class _Section(BaseModel):
    """A section of the settings: a misspelt key is an error, not a silently kept default."""

    model_config = ConfigDict(extra="forbid")


class IdentitySettings(_Section):
    cookie_name: str = Field("demdex", description="Name of the platform-UUID sync cookie (§1.3).")
    cookie_max_age_days: int = Field(180, description="Lifetime of the sync cookie in days (§1.3).")
    device_inactivity_days: int = Field(120, description="Device profiles inactive this long are deleted (§1.3).")
    link_ttl_days: int = Field(120, description="Links not seen for this many days no longer resolve IDs (§1.7).")
    max_resolution_hops: int = Field(3, description="Maximum hops when resolving an ID to a device (§2.3.3).")
    reject_email_like_ids: bool = Field(True, description="Reject user IDs that look like raw email addresses (§1.4).")


_RETIRED_INBOUND_KEYS = frozenset({"queue_read_max", "max_batches"})


class InboundSettings(_Section):
    max_line_bytes: int = Field(102_400, description="Longest accepted line in bytes, terminator excluded (§3.6).")
    max_lines_per_user: int = Field(200, description="Lines per user ID per logical file; the rest are discarded (§3.6).")
    max_compressed_bytes: int = Field(3 * GiB, description="Largest accepted stored object (.gz or PGP) in bytes (§3.3).")
    max_uncompressed_bytes: int = Field(5 * GiB, description="Largest accepted decoded content in bytes (§3.3).")
    accept_short_timestamp: bool = Field(False, description="Accept file names whose timestamp has fewer than 10 digits (D-20).")
    schedule: str = Field("continuous", description="`continuous` or a UTC cron expression (§3.10).")
    settle_seconds: int = Field(30, description="Quiet time before a logical file is processed (§3.10).")
    concurrent_jobs: int = Field(0, description="Jobs `onramp serve` runs at once, each on a different partner's file; 0 means one per core, at least 2 and at most 4.")
    small_file_bytes: int = Field(64 * 2**20, description="Uploaded size (all parts together) up to which a logical file is small. With two or more concurrent jobs, one is kept for small files, so a partner's huge file never holds up other partners' everyday files.")
    s3_retention_days: int = Field(30, description="Days handled uploads are kept in the drop zone's `processed/` and `rejected/` (local folders or S3) before the hourly sweep deletes them (§3.1).")

    @model_validator(mode="before")
    @classmethod
    def _drop_retired_keys(cls, data: Any) -> Any:
        # Removed settings that never changed anything (docs/decisions.md): configurations
        # that still set them keep working.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in _RETIRED_INBOUND_KEYS}
        return data


class TraitSettings(_Section):
    default_ttl_days: int = Field(120, description="TTL of a trait that does not set one (§4.1).")


class ProfileSettings(_Section):
    max_trait_qualifications: int = Field(150_000, description="Trait qualifications kept per profile (D-42).")


class ReportSettings(_Section):
    error_sampling_days: int = Field(14, description="Days error sampling stays on once enabled (§7.4).")
    samples_per_type: int = Field(10, description="Error samples kept per error type (§7.4).")


class EngineSettings(_Section):
    memory_limit: str = Field("1GB", description="DuckDB memory limit; larger jobs spill to disk instead of using more RAM.")
    threads: int = Field(0, description="Engine threads; 0 means one per core.")
    chunk_lines: int = Field(1_000_000, description="Lines per chunk of a big data file; chunks hold all lines of a profile, so results do not depend on it.")
    chunk_bytes: int = Field(64 * 2**20, description="Uncompressed bytes per chunk of a big data file, whichever of this and `chunk_lines` gives more chunks (key-value lines are long: their per-item tables are large).")
    native_merge: bool = Field(True, description="Merge the simple profiles of `.sync` files natively: d_sid profiles of platform UUIDs (ADR 0007), key-value profiles of data sources with rules (ADR 0008); off: every line takes the SQL plan, with the same results.")
    lock_wait_seconds: float = Field(900, description="How long a command waits for the store while another Onramp process (e.g. `onramp serve` running a job) holds it.")


class PlatformSettings(_Section):
    name: str = Field("Onramp", description="Platform name used in receipt subjects (§6.2).")
    partner_solutions_email: str = Field("partner-solutions@onramp.invalid", description="Mailbox that receives every receipt (§6.1).")
    sender: str = Field("onramp-noreply@onramp.invalid", description="From address of receipts (§6.1).")


class HttpSettings(_Section):
    host: str = Field("127.0.0.1", description="Address the HTTP server (ID sync, REST API) listens on.")
    port: int = Field(8080, description="Port of the HTTP server.")
    admin_token: SecretStr = Field(SecretStr(""), description="Bearer token with full REST API access; empty = generated on first start and stored in the data directory.")
    idsync_commit_ms: int = Field(5, description="Group-commit window of ID-sync writes in milliseconds (§2.1).")
    redirect_allow_hosts: list[str] = Field(default_factory=list, description="Hosts `redir` may point to; empty = any host (§2.1).")
    redirect_allow_hosts_by_dpid: dict[int, list[str]] = Field(default_factory=dict, description="Per data source (DPID): hosts `redir` may point to, replacing `redirect_allow_hosts` for it; `*.example.com` matches subdomains (D-13).")
    cookie_domain: str = Field("", description="`Domain` attribute of the sync cookie; empty = the host the call was sent to (§1.3).")
    idsync_load_seconds: float = Field(10.0, description="How often the server moves logged ID syncs into the store and re-reads the data sources (§2.1); inbound jobs load the log themselves first.")


class DropZoneSettings(_Section):
    kind: str = Field("local", description="`local` (a directory in the data directory) or `s3`.")
    path: Path | None = Field(None, description="Parent of the local drop zones `<path>/prod` and `<path>/beta` (§9.1); default `<data_dir>/dropzone`.")
    s3_endpoint: str = Field("", description="S3 endpoint URL; empty = AWS.")
    s3_bucket: str = Field("", description="Bucket holding `<partner>/date=YYYY-MM-DD/<file>` objects (§3.1).")
    s3_prefix: str = Field("", description="Key prefix inside the bucket.")
    s3_beta_bucket: str = Field("", description="Bucket of the beta environment (§9.1); empty = `<s3_bucket>-beta`.")
    s3_beta_prefix: str = Field("", description="Key prefix of the beta environment; empty = `s3_prefix`. Must not overlap prod's prefix in a shared bucket.")
    s3_access_key: SecretStr = Field(SecretStr(""), description="S3 access key ID used by the platform.")
    s3_secret_key: SecretStr = Field(SecretStr(""), description="S3 secret key used by the platform.")
    s3_region: str = Field("us-east-1", description="S3 region.")


class FtpSettings(_Section):
    enabled: bool = Field(True, description="Run the partner FTP server.")
    host: str = Field("127.0.0.1", description="Address the FTP server listens on.")
    port: int = Field(2121, description="FTP port (0 = any free port).")
    passive_ports: str = Field("", description="Passive port range `LOW-HIGH`; empty = any.")
    masquerade_address: str = Field("", description="Public IPv4 address announced in passive-mode replies, for a server behind NAT or a load balancer; empty = the address the client connected to.")
    certfile: Path | None = Field(None, description="PEM certificate+key: FTPS (explicit TLS) when set.")
    tls_required: bool = Field(True, description="With `certfile`: refuse logins and transfers without TLS.")
    beta_port: int | None = Field(None, description="FTP port of the beta environment's server (§9.1); unset = no beta FTP server.")
    sftp_enabled: bool = Field(False, description="Run the partner SFTP server.")
    sftp_port: int = Field(2222, description="SFTP port (0 = any free port).")
    sftp_host_key: Path | None = Field(None, description="SSH host key; default generated in the data directory.")
    sftp_beta_port: int | None = Field(None, description="SFTP port of the beta environment's server (§9.1); unset = no beta SFTP server.")
    sftp_authorized_keys: dict[str, list[str]] = Field(default_factory=dict, description="Partner login -> OpenSSH public keys (`ssh-ed25519 AAAA…`) accepted for SFTP.")
    accounts: dict[str, SecretStr] = Field(default_factory=dict, description="Partner login -> password for FTP and SFTP; the login is the partner's name, its drop folder (§11.2); secrets via env.")
    forward_retry_seconds: float = Field(60, description="With an S3 drop zone: how often FTP/SFTP uploads whose copy to S3 failed are sent again (§3.1); 0 = only at start.")


class MailSettings(_Section):
    smtp_host: str = Field("", description="SMTP server; empty = write messages to `<data_dir>/outbox/` as .eml files.")
    smtp_port: int = Field(587, description="SMTP port.")
    starttls: bool = Field(True, description="Use STARTTLS.")
    username: str = Field("", description="SMTP user name.")
    password: SecretStr = Field(SecretStr(""), description="SMTP password.")
    max_attempts: int = Field(8, description="Delivery attempts before a message is parked (it stays stored).")
    retry_base_seconds: int = Field(60, description="Wait after the first failed attempt; doubles with every further failure.")
    retry_max_seconds: int = Field(3600, description="Longest wait between two attempts.")
    timeout_seconds: float = Field(30, description="Seconds to wait for the SMTP server before an attempt counts as failed.")
    ca_file: Path | None = Field(None, description="PEM file of CA certificates trusted for the SMTP server (e.g. an internal CA); empty = the system trust store.")
    reject_link_base: str = Field("", description="Base URL under which reject files are served; receipt mail links `<base>/<reject file path>`. Empty = the file's path in the data directory.")


class Settings(BaseSettings):
    """Every Onramp setting. ``data_dir`` holds everything of one installation."""

    model_config = SettingsConfigDict(env_prefix="ONRAMP_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Field(Path("onramp-data"), description="Directory holding the store, drop zones, receipts and keys.")
    platform: PlatformSettings = Field(default_factory=PlatformSettings, description="Platform identity.")
    identity: IdentitySettings = Field(default_factory=IdentitySettings, description="ID sync and resolution (§1, §2).")
    inbound: InboundSettings = Field(default_factory=InboundSettings, description="Inbound files (§3).")
    traits: TraitSettings = Field(default_factory=TraitSettings, description="Traits (§4).")
    profiles: ProfileSettings = Field(default_factory=ProfileSettings, description="Profiles (§4.1).")
    reports: ReportSettings = Field(default_factory=ReportSettings, description="Reports (§7).")
    engine: EngineSettings = Field(default_factory=EngineSettings, description="Embedded engine (DuckDB).")
    http: HttpSettings = Field(default_factory=HttpSettings, description="HTTP server: ID sync and REST API (§2.1).")
    dropzone: DropZoneSettings = Field(default_factory=DropZoneSettings, description="Where partners drop files (§3.1).")
    ftp: FtpSettings = Field(default_factory=FtpSettings, description="Partner FTP/SFTP servers (§3.1).")
    mail: MailSettings = Field(default_factory=MailSettings, description="Receipt mail (§6.1, §7.5).")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _CONFIG_FILE.get("path")
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


# The TOML path is chosen per load (not per process), so tests can load several configs.
_CONFIG_FILE: dict[str, Path | None] = {"path": None}


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Load settings: ``overrides`` > environment > ``config`` TOML > defaults."""
    import os

    path = config or (Path(os.environ["ONRAMP_CONFIG"]) if os.environ.get("ONRAMP_CONFIG") else None)
    if path is not None and not path.exists():
        from onramp.errors import UsageError

        raise UsageError(f"config file {path} does not exist", hint="pass an existing TOML file to --config")
    _CONFIG_FILE["path"] = path
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise _configuration_error(exc, path) from None
    finally:
        _CONFIG_FILE["path"] = None


def _configuration_error(exc: ValidationError, path: Path | None) -> Exception:
    """Every problem of a configuration, located (``inbound.settle_secs``), with the fix."""
    import difflib

    from onramp.errors import UsageError

    problems, hints = [], []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "extra_forbidden":
            # Unknown keys are refused only at the top level and in sections (``_Section``).
            *section, key = (str(part) for part in error["loc"])
            known = Settings.model_fields if not section else Settings.model_fields[section[0]].annotation.model_fields
            problems.append(f"{where}: unknown setting")
            if close := difflib.get_close_matches(key, list(known), n=1):
                hints.append(f"did you mean {'.'.join([*section, close[0]])}?")
        else:
            problems.append(f"{where}: {error['msg']}")
    source = f"configuration {path}" if path else "configuration"
    hints.append("docs/settings.md lists every key; `onramp config show` prints the effective values")
    return UsageError(f"{source}: {'; '.join(problems)}", hint=" ".join(hints))
