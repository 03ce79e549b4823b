"""A Redis Cluster of a test run's own: 3 masters and 3 replicas on free loopback ports
(each with its bus port, +10000), each node with its own directory, ready in about two
seconds, torn down afterwards.

    python -m tests.redis_cluster up --dir D     # prints a node's URL; state in D
    python -m tests.redis_cluster down --dir D

"Ready" means every node reports `cluster_state:ok` and knows 6 nodes, and every
replica's link to its master is up. `.ci/run` starts one and hands its URL to the suite
(`SCOREBOARD_TEST_CLUSTER_URL`); without it the suite starts its own, or skips the
cluster tests where `redis-server` cannot run one (never in CI).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis

NODES = 6
READY_SECONDS = 30.0
NODE_TIMEOUT_MS = 1000
# A replica that won an election keeps its votes for the election's retry time (four
# times the node timeout, at least 4 s) on Redis 7.0: if its master fails within that
# time after a demotion, it "wins" again at once with that old epoch, which the other
# nodes reject as stale, and the slot was left without a master for longer than a
# test waits (30 s). A test that kills a master waits this long after its replica's
# last win.
ELECTION_MEMORY_SECONDS = max(4.0, 4 * NODE_TIMEOUT_MS / 1000) + 0.5


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """Ports P, free together with P + 10000 (the cluster bus), none closer than 2."""
    found: list[int] = []
    while len(found) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port + 10000 < 65536 and _free(port + 10000) and all(abs(port - p) > 1 for p in found):
            found.append(port)
    return found


@dataclass
class Cluster:
    directory: Path
    ports: list[int]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=5)

    def save(self) -> None:
        (self.directory / "cluster.json").write_text(json.dumps({"ports": self.ports}))

    @classmethod
    def load(cls, directory: Path) -> Cluster:
        return cls(directory, json.loads((directory / "cluster.json").read_text())["ports"])


def _start_node(directory: Path, port: int) -> None:
    node = directory / str(port)
    node.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "redis-server",
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(node),
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--cluster-require-full-coverage", "no",
            "--save", "",
            "--appendonly", "no",
            "--repl-diskless-sync-delay", "0",
            "--logfile", str(node / "redis.log"),
            "--pidfile", str(node / "redis.pid"),
            "--daemonize", "yes",
        ],
        check=True,
    )  # fmt: skip


def _ready(cluster: Cluster) -> bool:
    for port in cluster.ports:
        try:
            with cluster.client(port) as node:
                info = node.cluster("INFO")
                if info.get("cluster_state") != "ok" or int(info["cluster_known_nodes"]) != NODES:
                    return False
                replication = node.info("replication")
                if replication["role"] == "slave" and replication["master_link_status"] != "up":
                    return False
        except redis.RedisError:
            return False
    return True


def wait_ready(cluster: Cluster, within: float = READY_SECONDS) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if _ready(cluster):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the cluster on {cluster.ports} was not ready within {within:g} s")


def start(directory: Path) -> Cluster:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        raise FileNotFoundError("redis-server and redis-cli are needed for a cluster")
    directory.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(directory, free_ports(NODES))
    cluster.save()
    for port in cluster.ports:
        _start_node(directory, port)
    for port in cluster.ports:
        for _ in range(200):
            try:
                with cluster.client(port) as node:
                    node.ping()
                break
            except redis.RedisError:
                time.sleep(0.02)
    subprocess.run(
        [
            "redis-cli",
            "--cluster",
            "create",
            *(f"127.0.0.1:{port}" for port in cluster.ports),
            "--cluster-replicas",
            "1",
            "--cluster-yes",
        ],
        check=True,
        capture_output=True,
    )
    wait_ready(cluster)
    return cluster


def pid(cluster: Cluster, port: int) -> int | None:
    try:
        return int((cluster.directory / str(port) / "redis.pid").read_text())
    except (OSError, ValueError):
        return None


def kill(cluster: Cluster, port: int) -> None:
    """`kill -9` of one node (a test's failover, or the teardown)."""
    found = pid(cluster, port)
    if found is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(found, signal.SIGKILL)


def restart(cluster: Cluster, port: int) -> None:
    """Starts a node that was killed again, on its own directory (its cluster
    configuration kept: it rejoins, as a replica of the master that replaced it)."""
    _start_node(cluster.directory, port)
    wait_ready(cluster)


def slot_owners(cluster: Cluster, key: str) -> set[tuple[int, ...]]:
    """What each node that answers lists for the key's slot: (master, replicas...)."""
    seen = set()
    for port in cluster.ports:
        try:
            with cluster.client(port) as node:
                slot = node.cluster("KEYSLOT", key)
                seen |= {
                    tuple(int(node_info[1]) for node_info in entry[2:])
                    for entry in node.cluster("SLOTS")
                    if entry[0] <= slot <= entry[1]
                }
        except redis.RedisError:
            continue
    return seen


def owner(cluster: Cluster, key: str) -> tuple[int, int]:
    """(master port, replica port) of the key's slot, once every node that answers
    lists the same (after a failover the nodes learn of it one by one, and a failover
    started before they agree may be lost)."""
    deadline = time.monotonic() + 20
    while True:
        seen = slot_owners(cluster, key)
        if len(seen) == 1 and len(owners := next(iter(seen))) > 1:
            return owners[0], owners[1]
        if time.monotonic() > deadline:
            raise AssertionError(f"the nodes do not agree on the master of {key}: {seen}")
        time.sleep(0.05)


def stop(cluster: Cluster) -> None:
    for port in cluster.ports:
        kill(cluster, port)
    shutil.rmtree(cluster.directory, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="a Redis Cluster for tests")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    if args.action == "up":
        started = time.monotonic()
        cluster = start(args.dir)
        print(cluster.url)
        print(f"ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
        return 0
    stop(Cluster.load(args.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
