"""Conditions for the deferrable sensor tests: importable, as the triggerer requires."""

from __future__ import annotations

import requests


def job_is_done(response: requests.Response) -> bool:
    return response.json().get("state") == "done"
