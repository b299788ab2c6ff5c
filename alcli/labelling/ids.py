"""Answer ids and times as annotators' tools write them: ids from image URLs, normalised ids, ISO stamps."""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


def id_from_url(url: str) -> str:
    """The file an image URL points at: Label Studio's local-file `?d=PATH` parameter, else the URL's
    path (percent-decoding happens when ids are matched)."""
    if "?" not in url and "://" not in url:
        return url
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if "d" in query:
        return query["d"][0]
    return parts.path.lstrip("/") if "://" in url else parts.path or url


def normalise(id_: str, strip_prefix: str = "") -> str:
    """URL-decoded, `\\` → `/`, a leading `./` and `strip_prefix` removed."""
    key = unquote(id_).replace("\\", "/")
    return strip(key, strip_prefix)


def strip(key: str, prefix: str = "") -> str:
    if key.startswith("./"):
        key = key[2:]
    if prefix and key.startswith(prefix):
        key = key[len(prefix):]
    return key



def parse_time(value: Any) -> float:
    """POSIX seconds of an ISO 8601 stamp (Label Studio's `updated_at`); NaN when there is none."""
    if not isinstance(value, str) or not value:
        return math.nan
    try:
        stamp = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return math.nan
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=_dt.timezone.utc)
    return stamp.timestamp()
