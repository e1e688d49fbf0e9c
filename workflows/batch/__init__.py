"""`nst run` as a batch: configuration, the manifest reader, the driver (scheduler), the
workers, and the layout of a run's outputs. Imports no command-line module."""
