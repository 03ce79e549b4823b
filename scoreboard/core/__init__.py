"""Values, rules and process plumbing every layer shares: settings, errors, periods."""
