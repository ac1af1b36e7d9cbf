"""Vendor presets: the fixed settings and the documented rules of each vendor's JWT bearer flow.

A preset fills what the vendor fixes (the token URL, how the client authenticates, where the scope
goes, how ``aud`` is spelled) and checks what the vendor requires *before* any request, so that a
misconfiguration is reported by name instead of as a vendor's terse ``invalid_grant``. Every rule
names the vendor page it comes from (:mod:`.rules`); one module per vendor. A new vendor is a module
here and one line in :data:`PRESETS`.
"""

from __future__ import annotations

from airflow_jwt_provider.connection.presets.base import ErrorFactory, Preset
from airflow_jwt_provider.connection.presets.box import BOX
from airflow_jwt_provider.connection.presets.docusign import DOCUSIGN, DOCUSIGN_APPLICATION
from airflow_jwt_provider.connection.presets.entra import ENTRA
from airflow_jwt_provider.connection.presets.entra_workload_identity import ENTRA_WORKLOAD_IDENTITY
from airflow_jwt_provider.connection.presets.google import GOOGLE
from airflow_jwt_provider.connection.presets.google_workload_identity import GOOGLE_WORKLOAD_IDENTITY
from airflow_jwt_provider.connection.presets.salesforce import SALESFORCE
from airflow_jwt_provider.connection.presets.servicenow import SERVICENOW

__all__ = ["PRESETS", "ErrorFactory", "Preset", "get_preset"]

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        BOX,
        SALESFORCE,
        GOOGLE,
        DOCUSIGN,
        DOCUSIGN_APPLICATION,
        SERVICENOW,
        ENTRA,
        ENTRA_WORKLOAD_IDENTITY,
        GOOGLE_WORKLOAD_IDENTITY,
    )
}


def get_preset(name: str) -> Preset:
    """Return the preset called ``name`` (case-insensitive) or raise ``KeyError`` with advice."""
    try:
        return PRESETS[name.strip().lower()]
    except KeyError:
        raise KeyError(f"is {name!r}; use one of: {', '.join(PRESETS)}") from None
