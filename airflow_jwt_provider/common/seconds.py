"""Numbers of seconds as connections and servers write them: JSON numbers or text, never trusted as is.

JSON allows ``1e400`` (infinity once parsed), a URI-defined connection carries ``"inf"`` or
``"nan"`` as text, and a server may answer ``"expires_in": "Infinity"``. Each such value enters
here and leaves as a finite float or ``None``, so that no ``OverflowError`` or ``ValueError``
surfaces later, far from the field at fault.
"""

from __future__ import annotations

import math


def finite_seconds(value: object) -> float | None:
    """``value`` as a finite number (from an int, a float or numeric text); ``None`` for anything else.

    Booleans are not numbers here, though Python says they are.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):  # "soon"; an int beyond float's range
        return None
    return number if math.isfinite(number) else None
