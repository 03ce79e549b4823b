"""Event ids: version-4 UUIDs, unique, and never shared between a process and its fork."""

from __future__ import annotations

import os
import uuid

from scoreboard.core.event_ids import new_event_id


def test_ids_are_unique_version_4_uuids() -> None:
    ids = [new_event_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:600]:
        parsed = uuid.UUID(text)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, text)


def test_a_forked_child_draws_its_own_ids() -> None:
    new_event_id()  # the parent holds a block of randomness now
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        os.write(write_end, new_event_id().encode())
        os._exit(0)
    os.close(write_end)
    child_id = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    assert child_id != new_event_id()
    assert uuid.UUID(child_id).version == 4
