"""Keeps secrets out of every text the scaler emits.

Every URL that may carry credentials passes through `redact_url` before it reaches a log line,
an error message, a metric label or a repr; `redact_text` scrubs URLs embedded in free text
(for example a client library's exception message).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_MASK = "***"
# scheme://userinfo@ inside arbitrary text. Both parts are bounded so that the scan stays
# linear on huge inputs (an unbounded `[A-Za-z0-9+.-]*` took 10 s on 100 kB of letters, found by
# the fuzz test).
_USERINFO_IN_TEXT = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]{0,31}://)(?P<userinfo>[^@\s/]{1,512})@")


def redact_url(url: str) -> str:
    """Returns `url` with any password replaced by ***; the username is kept for debugging."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{_MASK}@{host}"))


def has_password(url: str) -> bool:
    """True if `url` carries a password in its userinfo."""
    try:
        return urlsplit(url).password is not None
    except ValueError:
        return False


def redact_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Masks userinfo of URLs found in `text`, and every literal in `secrets`."""
    masked = _USERINFO_IN_TEXT.sub(_mask_userinfo, text)
    for secret in secrets:
        if secret:
            masked = masked.replace(secret, _MASK)
    return masked


def _mask_userinfo(match: re.Match[str]) -> str:
    user = match.group("userinfo").split(":", 1)[0]
    return f"{match.group('scheme')}{user}:{_MASK}@"
