"""Replacing one of MLflow's callables by a wrapper of it, once.

The seam's `install()` functions run on every Flask app `mlflow_app.flask_app()` builds (the
tests build several per process); wrapping an already wrapped callable would run each check
twice, so the wrapper carries a mark that the next install sees.
"""

from __future__ import annotations

from collections.abc import Callable

WRAPPED = "sharinghub_wrapped"


def wrap_once(owner: object, name: str, wrap: Callable[[Callable], Callable]) -> None:
    """Set `owner.<name>` to `wrap(owner.<name>)`, unless it is already one of the seam's."""
    original = getattr(owner, name)
    if getattr(original, WRAPPED, False):
        return
    wrapper = wrap(original)
    setattr(wrapper, WRAPPED, True)
    setattr(owner, name, wrapper)
