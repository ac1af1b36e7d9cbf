"""Backends of the shared token cache: the contract and registry (:mod:`.base`), :mod:`.file`, :mod:`.redis`."""
