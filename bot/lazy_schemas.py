"""Start-up: aiogram's ~700 Telegram types get their pydantic schemas when first used.

aiogram declares every type with ``defer_build=True`` but then, at import, calls
``model_rebuild`` on each of them with the module's namespace of forward references: about 3 s
of CPU on this project's 2-core reference machine, most of the bot's start-up, for types a bot
like this one never meets (it uses a few dozen). ``defer_aiogram_schemas()``, called before
aiogram is first imported, keeps that namespace instead of building; pydantic's own deferred
build then runs on a type's first use (~0.05 s each), through ``model_rebuild`` again, which is
handed the kept namespace. Every other model behaves as before.

Only ``carebot run`` calls it. It leans on pydantic's private ``model_rebuild`` keywords, so
it checks they are there and otherwise leaves pydantic alone (start-up is then just slower).
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

from pydantic import BaseModel

_kept: dict[type, dict[str, Any]] = {}
_union_cache: dict[str, Any] = {}


def _union() -> dict[str, Any]:
    if not _union_cache:
        for namespace in _kept.values():
            _union_cache.update(namespace)
    return _union_cache


_installed = False


def defer_aiogram_schemas() -> bool:
    """Install the deferral (before aiogram is imported); False if it cannot apply."""
    global _installed
    if _installed:
        return True
    if "aiogram.types" in sys.modules:
        return False  # built already: nothing left to save
    original = BaseModel.model_rebuild.__func__  # type: ignore[attr-defined]
    keywords = inspect.signature(original).parameters
    if "_types_namespace" not in keywords or "_parent_namespace_depth" not in keywords:
        return False

    def model_rebuild(cls: type[BaseModel], **kwargs: Any) -> bool | None:
        namespace = kwargs.get("_types_namespace")
        if (
            namespace is not None
            and not kwargs.get("force")
            and cls.__module__.startswith("aiogram.")
            and cls.model_config.get("defer_build")
        ):
            _kept[cls] = namespace  # aiogram's import-time loop: build on first use instead
            return None
        if namespace is None and cls.__module__.startswith("aiogram."):
            # Methods' generic responses (``Response[list[Update]]``) resolve against the
            # same namespace the types were given.
            kept = next((_kept[base] for base in cls.__mro__ if base in _kept), None)
            kwargs["_types_namespace"] = kept if kept is not None else _union()
        result: bool | None = original(cls, **kwargs)
        return result

    BaseModel.model_rebuild = classmethod(model_rebuild)  # type: ignore[assignment, method-assign]
    _installed = True
    return True
