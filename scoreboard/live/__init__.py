"""Live feeds: a process's board subscriptions and the fan-out to its clients."""
