"""Credentials removed from text that came from elsewhere, before it is shown or stored.

A server (or a proxy in front of it) may quote the request back in an error, ``Authorization``
header included; that text would then reach stderr, ``--json``, the ledger, ``show``, exports
and the gallery. The client passes every remote text through ``redact`` at the one place it
enters, with the token it sent; the patterns catch credentials it does not know.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["REDACTED", "redact", "redact_value"]

REDACTED = "[redacted]"

MIN_SECRET_LENGTH = 4
"""Shorter "secrets" are not replaced word for word: they would mangle ordinary text."""

_AUTHORIZATION = re.compile(
    r"""(?ix)
    ( \b (?:proxy-)? authorization \b ["']? \s* [:=] \s* ["']? )   # the header's name, quoted
    (?: (?:bearer|basic|token|digest) \s+ )?+                       # its scheme, kept once seen
    [^\s"',;}\[\]]+                                                 # its credential, not [redacted]
    """
)
# Eight characters at least: "a bearer of news" is prose, not a credential.
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with each of ``secrets``, and anything that looks like a credential (an
    ``Authorization`` header's value, ``Bearer <x>``, ``user:password@`` in a URL), replaced by
    ``[redacted]``."""
    for secret in secrets:
        if len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, REDACTED)
    text = _AUTHORIZATION.sub(rf"\1{REDACTED}", text)
    text = _BEARER.sub(rf"\1 {REDACTED}", text)
    return _URL_USERINFO.sub(rf"\1{REDACTED}@", text)


def redact_value(value: Any, secrets: Iterable[str] = ()) -> Any:
    """``value`` (decoded JSON) with ``redact`` applied to every string in it, keys included."""
    known = tuple(secrets)
    if isinstance(value, str):
        return redact(value, known)
    if isinstance(value, Mapping):
        return {redact(str(k), known): redact_value(v, known) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item, known) for item in value]
    return value
