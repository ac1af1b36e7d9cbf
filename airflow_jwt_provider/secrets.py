"""Register secret values with Airflow's secret masker.

Connection passwords and extras whose *names* look secret are masked by Airflow
itself; values the provider derives (assertions, access tokens) or that arrive
under neutral names are masked here. Airflow masks a multi-line value only as a
whole, so PEM text is also masked line by line: a traceback or a log line that
quotes one line of a key must not show it.
"""

from __future__ import annotations

from airflow.sdk.log import mask_secret

#: Lines shorter than this (PEM armour, short JSON fragments) are not worth masking
#: on their own and would blank out ordinary words in the logs.
_MIN_LINE_LENGTH = 16
_MIN_MASKABLE = 5


def mask_secret_value(value: str | None) -> None:
    """Mask ``value`` in every log line from now on; no-op for ``None`` and empty values."""
    if not value or len(value) < _MIN_MASKABLE:
        return  # Airflow refuses to mask such short values (and warns about it)
    mask_secret(value)
    if "\n" in value:
        for line in value.splitlines():
            line = line.strip()
            if len(line) >= _MIN_LINE_LENGTH and not line.startswith("-----"):
                mask_secret(line)
