"""Event ids: random (version 4) UUIDs drawn from the operating system's generator in
blocks, so the score path makes one `getrandom` call per 256 ids instead of one each.
A forked child starts with an empty block and never repeats its parent's ids."""

from __future__ import annotations

import os

_BLOCK_IDS = 256
_ID_BYTES = 16


class _Source:
    def __init__(self) -> None:
        self.block = b""
        self.offset = 0

    def reset(self) -> None:
        self.block, self.offset = b"", 0

    def next_id(self) -> str:
        if self.offset >= len(self.block):
            self.block, self.offset = os.urandom(_BLOCK_IDS * _ID_BYTES), 0
        raw = bytearray(self.block[self.offset : self.offset + _ID_BYTES])
        self.offset += _ID_BYTES
        raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        text = raw.hex()
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_SOURCE = _Source()
os.register_at_fork(after_in_child=_SOURCE.reset)


def new_event_id() -> str:
    return _SOURCE.next_id()
