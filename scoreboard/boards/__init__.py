"""Boards and their rankings: the catalogue, reads, rebuild, reconcile, moderation."""
