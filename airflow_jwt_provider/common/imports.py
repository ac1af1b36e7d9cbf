"""Objects by dotted path: what the triggerer and the ``callable`` assertion source import."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def import_callable(path: str) -> Callable[..., Any]:
    """``package.module.function`` (or ``package.module.Class.method``) → the object.

    A path to something that cannot be called (a constant, a module) is an :class:`ImportError`
    naming what it found, here, rather than a bare "object is not callable" at the first poll.
    """
    module_name, _, attribute = path.rpartition(".")
    parts: list[str] = [attribute]
    while module_name:
        try:
            target: object = importlib.import_module(module_name)
        except ImportError:
            module_name, _, outer = module_name.rpartition(".")
            parts.insert(0, outer)
            continue
        for part in parts:
            target = getattr(target, part)
        if not callable(target):
            raise ImportError(f"{path!r} is a {type(target).__name__}, not a function")
        return target
    raise ImportError(f"cannot import {path!r}")
