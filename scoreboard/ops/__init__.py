"""Running the service: the command line."""
