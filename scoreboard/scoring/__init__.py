"""The score update: action tokens, the anti-cheat policy, the one atomic script."""
