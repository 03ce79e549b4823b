"""The write-behind syncer: the board's event stream into PostgreSQL.

Run with `scoreboard sync`; not available yet in this version.
"""
