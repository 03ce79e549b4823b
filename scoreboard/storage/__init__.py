"""Redis and PostgreSQL: key names, connections, the Lua scripts, migrations."""
