"""Lazy re-exports for the package's ``__init__`` files (PEP 562 module ``__getattr__``).

``import lvisnb`` must stay light (no torch, no lvis, no matplotlib): the command line starts
from it, and annotation reading never needs torch. Each ``__init__`` therefore names its public
calls in a table ``{name: "module"}`` and imports a module only when one of its names is first
used; the value is then kept in the package's namespace, so the import happens once.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(
    package: str, exports: Mapping[str, str], submodules: tuple[str, ...] = ()
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` that import a public name on first use.

    ``exports`` maps a public name to the module that defines it, relative to ``package``
    (``{"evaluate": "evaluation.evaluator"}`` in ``lvisnb``); ``submodules`` names modules or
    subpackages reachable as attributes (``("viz",)``: ``lvisnb.viz``). An unknown name raises
    ``AttributeError`` as a plain module would.
    """
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name: str) -> object:
        if name in submodules:
            value = importlib.import_module(f"{package}.{name}")
        elif name in exports:
            value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        public = {name for name in namespace if not name.startswith("_")}
        return sorted(public | set(exports) | set(submodules))

    return __getattr__, __dir__
