"""Backends of the shared token cache: :mod:`.file` (one machine) and :mod:`.redis` (a cluster)."""
