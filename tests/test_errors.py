"""The one exception tree: every error the package defines lives in errors.py."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import agentflow_jobs
from agentflow_jobs import errors

# Raised inside the ASGI gate to the web framework, which answers it: it must be
# starlette's HTTPException, and the bottom layer imports no web framework.
_FRAMEWORK_ERRORS = {"agentflow_jobs.server.app.BodyTooLarge"}


def _defined_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(agentflow_jobs.__path__, "agentflow_jobs."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, BaseException)
                    and value.__module__ == info.name):
                found[f"{info.name}.{name}"] = value
    return found


def test_every_error_class_is_in_the_one_tree() -> None:
    outside = {n for n in _defined_exceptions() if not n.startswith("agentflow_jobs.errors.")}
    assert outside <= _FRAMEWORK_ERRORS


def test_every_error_in_errors_py_derives_from_the_root_and_says_what_it_is() -> None:
    classes = {n: c for n, c in vars(errors).items()
               if inspect.isclass(c) and issubclass(c, BaseException)}
    assert all(issubclass(c, errors.AgentFlowError) for c in classes.values())
    assert all(c.__doc__ and c.__doc__.strip() and "\n" not in c.__doc__.strip()
               for c in classes.values())
    assert set(classes) <= set(errors.__all__)
    assert all(name in (errors.__doc__ or "") for name in classes)
