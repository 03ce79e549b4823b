"""Score updates signed by the game's server, on boards that require it.

The game server, which saw the round played, signs what the update will claim:

    scoreboard.v1\\n<action token>\\n<user id>\\n<score increase>\\n<unix seconds>

with the board's key (HMAC-SHA256 with a shared secret, or Ed25519 with the private key
whose public half the board holds), and the client sends it in `X-Action-Signature:
t=<unix seconds>,sig=<base64url>`. The token, the player and the amount are bound, so a
signature cannot be moved to another token or another amount; the timestamp must lie
within `SCOREBOARD_SIGNATURE_MAX_AGE_SECONDS` of now; and each signature is accepted
once (a retry of a lost answer is signed afresh, and the spent token then gives the
first answer: lua/claim_signature.lua). Every check runs before the score script: a
refused update spends nothing.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from scoreboard.core.contract.requests import Signing
from scoreboard.core.errors import InvalidRequest, ScoreValidationFailed

HEADER = "x-action-signature"
DOMAIN = "scoreboard.v1"
MAX_HEADER_CHARS = 256
_HEADER_RE = re.compile(r"\At=(\d{1,12}),sig=([A-Za-z0-9_\-+/]{16,200}={0,2})\Z")
ED25519_KEY_BYTES = 32


def signed_text(token: str, user_id: str, increase: int, timestamp: int) -> bytes:
    """What the game server signs for one update."""
    return f"{DOMAIN}\n{token}\n{user_id}\n{increase}\n{timestamp}".encode()


def _bytes(text: str) -> bytes | None:
    """base64 or base64url, padded or not."""
    cleaned = text.rstrip("=").replace("+", "-").replace("/", "_")
    try:
        return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        return None


def validate_signing(signing: Signing) -> Signing:
    """An Ed25519 key must be a public key: 32 bytes in base64."""
    if signing.algorithm == "ed25519":
        raw = _bytes(signing.key.strip())
        try:
            if raw is None or len(raw) != ED25519_KEY_BYTES:
                raise ValueError("not 32 bytes")
            Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            raise InvalidRequest(
                "an ed25519 key is the public key's 32 bytes in base64",
                details={"field": "signing"},
            ) from None
    return signing


@functools.lru_cache(maxsize=256)
def _public_key(text: str) -> Ed25519PublicKey:
    raw = _bytes(text.strip())
    assert raw is not None  # checked when the board's key was set
    return Ed25519PublicKey.from_public_bytes(raw)


def _refused(reason: str, message: str) -> ScoreValidationFailed:
    return ScoreValidationFailed(message, details={"reason": reason})


def check(
    signing: Signing,
    header: str | None,
    *,
    token: str,
    user_id: str,
    increase: int,
    now_s: float,
    max_age_s: int,
) -> str:
    """The signature's digest (its replay key), or ScoreValidationFailed with
    `details.reason`: signature_missing, signature_malformed, signature_stale or
    signature_invalid."""
    if not header:
        raise _refused("signature_missing", "This board needs the game server's X-Action-Signature")
    found = _HEADER_RE.match(header.strip()[:MAX_HEADER_CHARS])
    signature = None if found is None else _bytes(found[2])
    if found is None or signature is None:
        raise _refused(
            "signature_malformed", "X-Action-Signature must be t=<unix seconds>,sig=<base64url>"
        )
    timestamp = int(found[1])
    if abs(now_s - timestamp) > max_age_s:
        raise _refused("signature_stale", "The signature's timestamp is too far from now")
    text = signed_text(token, user_id, increase, timestamp)
    if signing.algorithm == "hmac-sha256":
        expected = hmac.new(signing.key.encode(), text, hashlib.sha256).digest()
        good = hmac.compare_digest(expected, signature)
    else:
        try:
            _public_key(signing.key).verify(signature, text)
            good = True
        except InvalidSignature:
            good = False
    if not good:
        raise _refused(
            "signature_invalid", "The signature does not match this token, player and amount"
        )
    return hashlib.sha256(signature).hexdigest()[:32]


def replayed() -> ScoreValidationFailed:
    return _refused("signature_replayed", "This signature was used already: sign the retry afresh")
