"""What every trigger of the provider does first: load the async hook, off the triggerer's event loop.

The triggerer imports a trigger's module on its event loop, where every millisecond blocks every
other trigger of the deployment: trigger modules stay light, and the async hook (aiohttp, the
signing stack) is imported in a worker thread when a trigger first runs.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_jwt_provider.hooks.jwt_bearer_async import JwtBearerAsyncHook

_ASYNC_HOOK_MODULE = "airflow_jwt_provider.hooks.jwt_bearer_async"


async def async_hook_class() -> type[JwtBearerAsyncHook]:
    """:class:`~airflow_jwt_provider.hooks.jwt_bearer_async.JwtBearerAsyncHook`, imported in a thread."""
    module = await asyncio.to_thread(importlib.import_module, _ASYNC_HOOK_MODULE)
    hook_class: type[JwtBearerAsyncHook] = module.JwtBearerAsyncHook
    return hook_class
