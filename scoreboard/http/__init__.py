"""The HTTP edge: middleware, bodies, the envelope, headers, protocols, OpenAPI."""
