"""Logical files and when they are settled (SPEC §3.10): pure, ``now`` is passed in.

Drop-zone objects are grouped into logical files — all split parts of one base name in
one ``<partner>/date=…/`` folder of one environment — and a logical file is *settled*
once it has been quiet for ``inbound.settle_seconds`` (no new part, no size change), or
at once when an `.info` control file lists all its parts and they have arrived. With a
cron ``inbound.schedule`` the watcher takes settled files only at the scheduled times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from onramp.errors import InvalidFileName, UsageError
from onramp.formats.info_file import InfoFile, InvalidInfoFile, is_info_name
from onramp.formats.names import SyncFileName, parse_file_name
from onramp.transports.dropzone import DropObject
from onramp.transports.layout import is_put_back

LogicalKey = tuple[str, str, str, str]  # env, partner folder, date, base name


@dataclass(frozen=True)
class LogicalFile:
    """All split parts of one base name in one partner/date folder of one environment."""

    env: str
    partner: str
    date: str
    base: str
    parts: tuple[DropObject, ...]
    info: DropObject | None = None  # the `.info` file that lists these parts, if any

    @property
    def key(self) -> LogicalKey:
        return (self.env, self.partner, self.date, self.base)

    @property
    def lane(self) -> tuple[str, str]:
        return (self.env, self.partner)

    def order(self) -> tuple:
        """§3.8.4 / D-37 within a partner's lane: ID-sync files first, then by timestamp."""
        try:
            name = parse_file_name(self.parts[0].name, accept_short_timestamp=True)
        except InvalidFileName:
            return (2, 0, self.base)
        return (0 if isinstance(name, SyncFileName) else 1, name.timestamp, self.base)


def logical_base(name: str) -> str:
    """The logical file a name belongs to: its base name, or itself when it does not parse
    (such a file is processed alone and rejected with a receipt, §3.1)."""
    try:
        return parse_file_name(name, accept_short_timestamp=True).base_name
    except InvalidFileName:
        return name


def signature(objects: Iterable[DropObject]) -> tuple:
    return tuple(sorted((o.key, o.size, o.mtime, o.etag) for o in objects))


@dataclass
class _Seen:
    signature: tuple
    changed_at: float | None  # when this process saw the current signature appear; None: before start


@dataclass
class Observation:
    ready: list[LogicalFile] = field(default_factory=list)
    waiting: int = 0  # logical files not yet settled
    stray_infos: list[tuple[DropObject, str | None]] = field(default_factory=list)  # (info, None=orphan | reason)


class SettleTracker:
    """Decides, scan after scan, which logical files are settled (pure: ``now`` is passed in).

    A logical file's quiet time starts at the newest part's modification time or at the
    scan that first saw its current shape, whichever is later: files uploaded while the
    service was down are ready on the first scan, and a change the service saw always
    restarts the clock even if the store reports an old modification time.
    """

    def __init__(self, settle_seconds: float):
        self.settle = settle_seconds
        self._seen: dict[tuple, _Seen] = {}

    def observe(self, env: str, objects: Iterable[DropObject], infos: Mapping[str, InfoFile | InvalidInfoFile],
                now: float, *, initial: bool = False) -> Observation:
        groups: dict[LogicalKey, list[DropObject]] = {}
        info_objs: list[DropObject] = []
        for obj in objects:
            if obj.name.startswith(".") or is_put_back(obj.name):
                continue  # an upload still written under a temporary name, or our own receipt
            if is_info_name(obj.name):
                info_objs.append(obj)
                continue
            groups.setdefault((env, obj.partner, obj.date, logical_base(obj.name)), []).append(obj)
        live = set(groups) | {("info", env, o.key) for o in info_objs}
        for key in [k for k in self._seen if _env_of(k) == env and k not in live]:
            del self._seen[key]  # moved away or deleted: a new upload under that name starts afresh

        out = Observation()
        info_of: dict[LogicalKey, DropObject] = {}
        complete: set[LogicalKey] = set()
        for info_obj in info_objs:
            quiet = self._quiet(("info", env, info_obj.key), [info_obj], now, initial)
            parsed = infos.get(info_obj.key)
            if parsed is None:
                continue  # not read yet
            if isinstance(parsed, InvalidInfoFile):
                if quiet:
                    out.stray_infos.append((info_obj, str(parsed)))
                continue
            bases = {logical_base(n) for n in parsed.names}
            if len(bases) != 1:
                if quiet:
                    out.stray_infos.append((info_obj, "the .info file lists parts of several logical files"))
                continue
            key = (env, info_obj.partner, info_obj.date, bases.pop())
            parts = {o.name: o for o in groups.get(key, ())}
            if not parts:
                if quiet:
                    out.stray_infos.append((info_obj, None))  # its parts were processed already
                continue
            info_of[key] = info_obj
            if all(p.name in parts and (p.size is None or parts[p.name].size == p.size) for p in parsed.parts):
                complete.add(key)

        for key, objs in groups.items():
            settled = self._quiet(key, objs, now, initial)
            if settled or key in complete:
                parts = tuple(sorted(objs, key=lambda o: o.name))
                out.ready.append(LogicalFile(env, key[1], key[2], key[3], parts, info_of.get(key)))
            else:
                out.waiting += 1
        return out

    def current(self, key: LogicalKey) -> tuple | None:
        seen = self._seen.get(key)
        return seen.signature if seen else None

    def _quiet(self, key: tuple, objs: list[DropObject], now: float, initial: bool) -> bool:
        sig = signature(objs)
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = _Seen(sig, None if initial else now)
        elif seen.signature != sig:
            seen.signature, seen.changed_at = sig, now
        last_change = max([o.mtime for o in objs] + ([seen.changed_at] if seen.changed_at is not None else []))
        return now - last_change >= self.settle


def _env_of(key: tuple) -> str:
    return key[1] if key[0] == "info" else key[0]


def check_schedule(schedule: str) -> str | None:
    """``None`` for continuous mode, else the validated cron expression (UTC)."""
    if schedule.strip().lower() == "continuous":
        return None
    from croniter import croniter

    if not croniter.is_valid(schedule):
        raise UsageError(f"inbound.schedule {schedule!r} is neither 'continuous' nor a cron expression",
                         hint="write e.g. '30 0,12 * * *' (minute hour day month weekday, UTC), or 'continuous'")
    return schedule


def next_fire(cron: str, after: float) -> float:
    """The first scheduled time strictly after ``after`` (Unix seconds, UTC)."""
    from croniter import croniter

    start = datetime.fromtimestamp(after, tz=UTC)
    return croniter(cron, start).get_next(datetime).timestamp()
