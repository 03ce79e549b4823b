"""JSON out: the success envelope and any value of the contract, by one msgspec
encoder."""

from typing import Any

import msgspec

_ENCODER = msgspec.json.Encoder()


class _Success(msgspec.Struct):
    success: bool
    data: Any


def envelope(data: Any) -> bytes:
    """`{"success": true, "data": …}` as JSON: the answer of every route that succeeds
    (Structs, dicts, lists and scalars inside)."""
    return _ENCODER.encode(_Success(True, data))


def encode(value: Any) -> bytes:
    return _ENCODER.encode(value)
