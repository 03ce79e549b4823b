"""Scoreboard: a Redis-first live leaderboard service."""

__version__ = "0.1.0"
