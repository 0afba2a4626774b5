"""When a file was taken: ``taken_at`` as the API answers it, and its day.

A stored and answered ``taken_at`` is UTC, ISO 8601 with ``Z``, to the second
(``2026-11-20T13:03:00Z``: API.md's convention), or a day alone
(``2026-11-20``) when that is all the uploader said. A moment with an offset
(a client's ``+01:00``, a camera's OffsetTimeOriginal) is moved to UTC. A
moment without one (most cameras' EXIF, a client's ``2026-11-20T14:03:00``)
is a wall-clock time in ``uploads.camera_time_zone``; where that clock is
ambiguous the choice is fixed: a time in the spring-forward gap takes the
offset before the change (02:30 on 29 March 2026 in Amsterdam is 01:30Z), a
time in the autumn fold the first of its two moments (02:30 on 25 October
2026 is 00:30Z, summer time still). Both are ``fold=0`` (PEP 495).

The day a file belongs to (its diary entry, its export folder) is the day on
the organisation's clocks, :func:`local_day`, not the UTC date: a photo
taken at 23:30 in Amsterdam on 20 November is 22:30Z, and of the 20th.

Values stored before taken_at was UTC (a camera's offset or no zone at
all) are read by the same rules, so old records answer ``Z`` too.

A moment must be one both UTC and the organisation's clocks can write
(years 1 to 9999): a client's other one is refused (400), a camera's
ignored (:func:`exif_taken_at`). One an older version stored anyway
(``9999-12-31T23:59:59Z``, 10000-01-01 in Amsterdam) is answered as it is
and has no local day: its file is of the day it was added (:func:`day_of`,
the export's folders), so no read or export fails on it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timezone
from zoneinfo import ZoneInfo

#: ``2026-11-20``: a day, kept as a day.
_DAY_LENGTH = 10


def _moment(value: str, zone: ZoneInfo) -> datetime:
    """The aware moment ``value`` names; ValueError when it names none."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        # fold=0: in the gap the offset before the change, in the fold the first moment.
        moment = moment.replace(tzinfo=zone, fold=0)
    return moment


def _in(moment: datetime, zone: ZoneInfo | timezone) -> datetime:
    """``moment`` on the clocks of ``zone``; ValueError where that is before
    year 1 or after 9999 (``0001-01-01T00:00:00+01:00`` in UTC,
    ``9999-12-31T23:59:59Z`` in Amsterdam), not an OverflowError."""
    try:
        return moment.astimezone(zone)
    except OverflowError:
        where = "UTC" if zone is UTC else "local time (uploads.camera_time_zone)"
        raise ValueError(f"the moment is outside the years 1 to 9999 in {where}") from None


def normal_taken_at(value: str, zone: ZoneInfo) -> str:
    """``value`` (a day, or a timestamp with or without a zone) as stored and
    answered: a day as it is, a timestamp in UTC with ``Z``, to the second.
    ``zone`` is the one a zone-less time is read in. Raises ValueError for
    what is neither, and for a moment UTC or ``zone``'s clocks cannot
    write (before year 1, after 9999)."""
    if len(value) == _DAY_LENGTH:
        return date.fromisoformat(value).isoformat()
    moment = _in(_moment(value, zone), UTC)
    _in(moment, zone)  # its day is the local one (diary, export): that clock must write it too
    return moment.replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def local_day(value: str | datetime, zone: ZoneInfo) -> date:
    """The day in ``zone`` on which ``value`` (a ``taken_at``, or an aware
    moment such as a record's ``created_at``) fell. Raises ValueError for a
    string that names no day or moment."""
    if isinstance(value, datetime):
        return value.astimezone(zone).date() if value.tzinfo else value.date()
    if len(value) == _DAY_LENGTH:
        return date.fromisoformat(value)
    return _in(_moment(value, zone), zone).date()


def local_time(value: datetime, zone: ZoneInfo) -> datetime:
    """An aware ``value`` on the clocks of ``zone`` (a naive one is taken as
    UTC); ValueError where those clocks cannot write it (a
    ``9999-12-31T23:59:59Z`` an older version stored, in Amsterdam)."""
    return _in(value if value.tzinfo else value.replace(tzinfo=UTC), zone)


def exif_taken_at(value: str | None, zone: ZoneInfo) -> str | None:
    """A photo's EXIF time (vault/media/jpeg.py) as stored: :func:`normal_taken_at`,
    or None where it names no moment UTC and ``zone``'s clocks can both write
    (``0001:01:01 00:00:00`` at ``+01:00``): ignored, as other garbage EXIF
    times are, not kept as the camera wrote it."""
    if value is None:
        return None
    try:
        return normal_taken_at(value, zone)
    except ValueError:
        return None


def answered_taken_at(stored: str, zone: ZoneInfo) -> str:
    """A stored ``taken_at`` as the API answers it: :func:`normal_taken_at`,
    also for one stored before taken_at was UTC; one that cannot be read
    (none is written so) is answered as it is rather than failing the read."""
    try:
        return normal_taken_at(stored, zone)
    except ValueError:
        return stored


def day_of(taken_at: object, added: datetime, zone: ZoneInfo) -> date:
    """The organisation's day of a file: of its ``taken_at`` where it has a
    readable one, else of the moment it was ``added`` (its ``created_at``)."""
    if isinstance(taken_at, str) and taken_at:
        try:
            return local_day(taken_at, zone)
        except ValueError:
            pass
    return local_day(added, zone)
