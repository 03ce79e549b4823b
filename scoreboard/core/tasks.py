"""Background tasks of a process: started by their owner, cancelled the same way."""

from __future__ import annotations

import asyncio
import contextlib


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a task and wait until it has ended (nothing when there is none). The
    cancellation is repeated until the task ends: on Python 3.11 an
    `asyncio.wait_for` whose timeout fires as the task is cancelled raises TimeoutError
    instead, and a loop that treats a timeout as its cue to go on would swallow the
    one cancellation and run for ever."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    with contextlib.suppress(asyncio.CancelledError):
        await task
