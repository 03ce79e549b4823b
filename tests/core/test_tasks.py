"""Cancelling background tasks."""

from __future__ import annotations

import asyncio

from scoreboard.core.tasks import cancel


async def test_a_task_that_swallows_one_cancellation_still_ends() -> None:
    """Was: a board guard's loop lost its cancellation to Python 3.11's wait_for (a
    timeout firing as it was cancelled) and `cancel` waited for it for ever."""
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed > 1:
                    raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0.02)
    cancelling = asyncio.create_task(cancel(task))
    done, _ = await asyncio.wait({cancelling}, timeout=1)  # not wait_for: it cancels too
    assert done and task.done() and swallowed == 2
    await cancel(None)
