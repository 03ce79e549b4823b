"""Where a phase's CPU goes: seconds used by the processes of this machine, from /proc.

Linux only; elsewhere (or for a Redis or PostgreSQL on another machine) a group is
simply missing from the result.
"""

from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")


def _cpu_seconds(pid: int) -> float:
    """The CPU time of a process's threads, to the nanosecond from their schedstat where
    the kernel keeps it (a short phase may use less than one of stat's 10 ms ticks),
    else from its stat in clock ticks."""
    try:
        return (
            sum(
                int((task / "schedstat").read_text().split()[0])
                for task in (PROC / str(pid) / "task").iterdir()
            )
            / 1e9
        )
    except (OSError, IndexError, ValueError):
        pass
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command name) of every process we can see."""
    found = []
    for entry in PROC.iterdir() if PROC.is_dir() else ():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            found.append((int(entry.name), parent, name))
    return found


def _with_children(pid: int, processes: list[tuple[int, int, str]]) -> list[int]:
    family, grew = {pid}, True
    while grew:
        children = {p for p, parent, _ in processes if parent in family} - family
        family |= children
        grew = bool(children)
    return sorted(family)


def _busy_and_total() -> tuple[int, int]:
    try:
        fields = [int(v) for v in (PROC / "stat").read_text().split("\n", 1)[0].split()[1:9]]
    except OSError:
        return 0, 0
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class CpuMeter:
    """CPU seconds of named process groups between `start` and `stop`: process trees by
    pid (a server and its workers) and every process with a given command name."""

    def __init__(self, trees: dict[str, int], named: dict[str, str]) -> None:
        processes = _processes()
        self._groups = {label: _with_children(pid, processes) for label, pid in trees.items()}
        for label, command in named.items():
            pids = [pid for pid, _, name in processes if name == command]
            if pids:
                self._groups[label] = pids
        self._before: dict[str, float] = {}
        self._machine = (0, 0)

    def start(self) -> None:
        self._before = self._sample()
        self._machine = _busy_and_total()

    def stop(self) -> tuple[dict[str, float], float]:
        """CPU seconds per group, and the share of all CPUs that was busy."""
        after = self._sample()
        busy, total = _busy_and_total()
        used = {label: after[label] - self._before.get(label, 0.0) for label in after}
        elapsed = total - self._machine[1]
        return used, (busy - self._machine[0]) / elapsed if elapsed else 0.0

    def _sample(self) -> dict[str, float]:
        return {
            label: sum(_cpu_seconds(pid) for pid in pids) for label, pids in self._groups.items()
        }
