"""The server and the syncer tune the garbage collector once their services exist."""

from __future__ import annotations

import gc

from scoreboard.core.gc_tuning import YOUNG_THRESHOLD, tune_for_service


def test_long_lived_objects_are_frozen_and_young_ones_collected_less_often() -> None:
    before = gc.get_threshold()
    try:
        tune_for_service()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 0
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # cycles made afterwards are still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
