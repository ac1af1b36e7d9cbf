"""Condition functions the event trigger tests import by dotted path, as the triggerer would."""

from __future__ import annotations

import requests


def has_rows(response: requests.Response) -> bool:
    """Ready when the export has rows."""
    return bool(response.json().get("rows"))
