"""The API's contract: request bodies (`requests`) and response shapes (`replies`),
each declared once as a msgspec Struct, and the encoding of answers (`encoding`).
Import from here."""

from scoreboard.core.contract.encoding import encode, envelope
from scoreboard.core.contract.replies import *  # noqa: F403
from scoreboard.core.contract.replies import __all__ as _replies
from scoreboard.core.contract.requests import *  # noqa: F403
from scoreboard.core.contract.requests import __all__ as _requests

__all__ = ["encode", "envelope", *_replies, *_requests]
