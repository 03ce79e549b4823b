"""Every node of a Redis Cluster as the service sees it: its role, whether it answers,
a replica's link to its primary and how far behind it is, and the boards a primary
holds. For `/health/detailed` and `/metrics`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from redis.crc import key_slot

from scoreboard.storage.keys import Keys


@dataclass(frozen=True)
class NodeHealth:
    address: str
    role: str  # "primary" | "replica", as the node says (as the map says when it is down)
    up: bool
    primary: str | None = None  # a replica's primary
    link: str | None = None  # a replica's link to it: "up" | "down"
    lag_bytes: int | None = None  # a replica's replication offset behind its primary's
    boards: tuple[str, ...] = ()  # the boards whose keys a primary holds

    def as_dict(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"address": self.address, "role": self.role, "up": self.up}
        if self.role == "primary":
            shown["boards"] = list(self.boards)
        else:
            shown |= {"primary": self.primary, "link": self.link, "lag_bytes": self.lag_bytes}
        return shown

    def problem(self) -> str | None:
        if not self.up:
            return f"redis {self.role} {self.address} does not answer"
        if self.role == "replica" and self.link != "up":
            return f"redis replica {self.address}: its link to {self.primary} is down"
        return None


async def _asked(call: Any, within: float) -> Any:
    try:
        async with asyncio.timeout(within):
            return await call
    except Exception:  # a node that does not answer is reported as such
        return None


def _holder(view: dict[str, dict[str, Any]], slot: int) -> str | None:
    for address, node in view.items():
        if any(int(r[0]) <= slot <= int(r[-1]) for r in node.get("slots") or ()):
            return address
    return None


async def cluster_nodes(
    client: Any, keys: Keys, boards: list[str], within: float
) -> list[NodeHealth] | None:
    """Each node of the cluster (primaries first, then by address), as the node the
    client asks first lists them, with each primary's replication state; None when the
    cluster cannot be asked, [] for a client of one Redis."""
    manager = getattr(client, "nodes_manager", None)
    if manager is None:
        return []
    view: dict[str, dict[str, Any]] | None = await _asked(client.cluster_nodes(), within)
    if not view:
        return None
    address_of = {node["node_id"]: address for address, node in view.items()}
    primaries = [a for a, node in view.items() if "master" in node["flags"]]
    asked = [manager.get_node(node_name=address) for address in primaries]
    infos = await asyncio.gather(
        *(
            _asked(client.info("replication", target_nodes=node), within)
            if node is not None
            else asyncio.sleep(0)
            for node in asked
        )
    )
    replication = dict(zip(primaries, infos, strict=True))
    held: dict[str, list[str]] = {}
    for board in sorted(boards):
        holder = _holder(view, key_slot(keys.board(board).leaderboard.encode()))
        if holder is not None:
            held.setdefault(holder, []).append(board)
    found = []
    for address, node in view.items():
        flags = node["flags"].split(",")
        up = bool(node.get("connected")) and "fail" not in flags and "fail?" not in flags
        if "master" in flags:
            info = replication.get(address)
            up = up and info is not None
            found.append(NodeHealth(address, "primary", up, boards=tuple(held.get(address, ()))))
            continue
        primary = address_of.get(node.get("master_id", ""))
        info = replication.get(primary or "") or {}
        listed = next(
            (
                value
                for value in info.values()
                if isinstance(value, dict) and f"{value.get('ip')}:{value.get('port')}" == address
            ),
            None,
        )
        link = "up" if listed is not None and listed.get("state") == "online" else "down"
        lag = (
            max(0, int(info["master_repl_offset"]) - int(listed["offset"]))
            if listed is not None and "master_repl_offset" in info
            else None
        )
        found.append(NodeHealth(address, "replica", up, primary, link, lag))
    return sorted(found, key=lambda n: (n.role != "primary", n.address))
