"""The application: its routes, one module per area, and the process's services."""
