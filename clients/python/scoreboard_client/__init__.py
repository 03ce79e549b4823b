"""Python client of the scoreboard service: `Client` (sync) and `AsyncClient`.

from scoreboard_client import Client

with Client("http://127.0.0.1:8000") as client:
    client.login("alice", "correct horse")
    answer = client.play(52, session_id="match-17")
    print(answer["new_score"], answer["rank"])
"""

from scoreboard_client import types
from scoreboard_client._core import ScoreboardError
from scoreboard_client.aio import AsyncClient
from scoreboard_client.sync import Client

__all__ = ["AsyncClient", "Client", "ScoreboardError", "types"]
