"""The text patterns of the request contract, declared once. The validators match with
`matcher()` (the whole text, a trailing newline included) and the OpenAPI document
publishes the same strings, so the two cannot drift apart."""

from __future__ import annotations

import functools
import re

USERNAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$"
# ASCII addresses, any case; the domain is dot-separated letters, digits and hyphens
EMAIL = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$"
# the published form of a password (the server also takes any text of 8 characters up
# to 72 bytes of UTF-8: bcrypt reads no more)
PASSWORD = r"^[ -~]{8,72}$"  # noqa: S105 (a pattern, not a secret)
# 1-100 printable ASCII characters, no spaces: it is echoed into events and logs
SESSION_ID = r"^[!-~]{1,100}$"
BOARD_NAME = r"^[a-z0-9_-]{1,64}$"
# a device as its client names it: its own id for it, or a SHA-256 of its fingerprint,
# with, optionally, its Ed25519 public key (32 bytes in base64)
DEVICE_ID = r"^[!-~]{1,100}$"
DEVICE_FINGERPRINT = r"^[0-9a-f]{64}$"
DEVICE_PUBLIC_KEY = r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$"
# the service's own handle of a device (a digest of how its client names it)
DEVICE_HANDLE = r"^[0-9a-f]{32}$"
# a score increase sent as text: plain decimal digits, no sign, no leading zero
SCORE_INCREASE_TEXT = r"^[1-9][0-9]{0,15}$"


@functools.cache
def matcher(pattern: str) -> re.Pattern[str]:
    """`pattern` as JSON Schema reads it: `$` is the end of the text (in Python it
    would also match before a final newline)."""
    assert pattern.startswith("^") and pattern.endswith("$"), pattern
    return re.compile(r"\A(?:" + pattern[1:-1] + r")\Z")
