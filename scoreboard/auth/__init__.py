"""Accounts, passwords, login sessions and the security audit trail."""
