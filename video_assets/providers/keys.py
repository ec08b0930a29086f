"""API keys, the one place they are read from the environment, and redaction of them.

- ``api_key(provider)``: ``OPENAI_API_KEY`` / ``REPLICATE_API_TOKEN`` (``schemas.PROVIDER_KEYS``),
  stripped of surrounding whitespace once, here (Kubernetes secrets and Windows ``.env`` files
  often end in ``\\n`` or ``\\r``); ``""`` when unset or blank. A key that still holds whitespace
  or a control character is refused (``ApiKeyInvalid``) with a message that does not quote it.
- ``redact(text, *secrets)``: every configured key (and any given secret) as written, stripped,
  ``repr``-escaped, JSON-escaped and URL-encoded, and any ``Bearer <value>`` / ``Token <value>``,
  become ``***``. Every error text that may reach the ledger, an exception, a log or stderr goes
  through it.

``OPENAI_BASE_URL`` and ``REPLICATE_BASE_URL`` are not secrets; the clients read them.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse

from video_assets.schemas import PROVIDER_KEYS

MASK = "***"
# a credential after an auth scheme: at least 8 characters of the kinds keys are made of, in any
# escaped form (backslash escapes, percent-encoding)
# (any case; a value holding a digit, as keys do, so "Token validation failed" stays as it is)
_SCHEME_VALUE = re.compile(r"\b(Bearer|Token)(\s+|%20|\+)(?=[A-Za-z0-9_\-.~+/=%\\:]*\d)"
                           r"[A-Za-z0-9_\-.~+/=%\\:]{8,}", re.IGNORECASE)


class ApiKeyInvalid(ValueError):
    """A key in the environment that cannot be a key (whitespace or control characters inside)."""


def api_key(provider: str) -> str:
    """The provider's key from the environment, stripped; ``""`` when unset or blank."""
    var = PROVIDER_KEYS[provider]
    key = os.environ.get(var, "").strip()
    bad = next((c for c in key if c.isspace() or not c.isprintable()), None)
    if bad is not None:
        raise ApiKeyInvalid(f"{var}: holds a whitespace or control character ({_name(bad)}) inside "
                            "the key; fix: export the key alone, on one line (e.g. "
                            f"export {var}=\"$(tr -d '[:space:]' < keyfile)\")")
    return key


def _name(char: str) -> str:
    return {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", " ": "a space"}.get(
        char, f"U+{ord(char):04X}")


def _forms(secret: str) -> set[str]:
    """The ways a secret may be written in an error text."""
    forms: set[str] = set()
    for value in {secret, secret.strip()}:
        if len(value.strip()) < 4:  # nothing worth hiding, and masking it would garble text
            continue
        forms |= {value, repr(value)[1:-1], json.dumps(value)[1:-1], urllib.parse.quote(value),
                  urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value),
                  value.encode("unicode_escape").decode()}
    return {f for f in forms if f}


def redact(text: str, *secrets: str) -> str:
    """``text`` without any configured key or given secret, in any escaped form, and without the
    value of any ``Bearer``/``Token`` credential."""
    keys = [os.environ.get(var, "") for var in PROVIDER_KEYS.values()]
    for form in sorted(set().union(*(_forms(s) for s in [*keys, *secrets] if s)), key=len,
                       reverse=True):
        text = text.replace(form, MASK)
    return _SCHEME_VALUE.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
