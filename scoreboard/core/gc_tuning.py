"""The cyclic garbage collector, tuned for a long-running server process.

With the default thresholds the collector runs every 700 new container objects, and
every tenth of those runs also walks everything the process built at start (settings,
scripts, pools, caches). Under load that came to a large share of a request's cost.
Objects alive once the service is up are frozen out of collection, and the youngest
generation is collected every 50,000 allocations instead of 700: cycles are still
collected, only in larger, rarer passes.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000


def tune_for_service() -> None:
    """Call once the process's long-lived objects exist."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
