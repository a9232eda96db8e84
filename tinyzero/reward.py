"""The reward hook: its type, the default (the environment's own reward) and a fingerprint of its code.

Why a fingerprint: A*PO's stage-1 table caches V* = β·log E_π_ref[exp(r/β)], which depends on the
reward. Users are told to edit ``compute_reward`` in train.py, and after such an edit the function
keeps its name, so the cache key must follow what the function *does*: its bytecode, its constants,
its default arguments, the values of the module-level constants it reads and, recursively, the code
of the functions it calls. Comments, docstrings and line numbers do not count (they change nothing).
The task's config, which the reward may read through ``task``, is keyed separately.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import types
from collections.abc import Callable
from typing import Any

from tinyzero.rollout import Episode

RewardFn = Callable[[Any, Episode], float]

_PLAIN = (bool, int, float, complex, str, bytes, type(None))


def default_reward(task: Any, episode: Episode) -> float:
    """The environment's own reward, summed over turns (train.py's compute_reward may reshape it)."""
    return episode.reward


def reward_fingerprint(fn: Callable) -> str:
    """A short hash that changes whenever what ``fn`` computes may have changed."""
    parts: list[str] = []
    _describe(fn, parts, seen=set())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _value(value: Any) -> str:
    """A stable text for a constant (frozensets sorted: their order follows string hashing)."""
    if isinstance(value, frozenset | set):
        return "{" + ",".join(sorted(_value(v) for v in value)) + "}"
    if isinstance(value, tuple | list):
        return "(" + ",".join(_value(v) for v in value) + ")"
    if isinstance(value, types.CodeType):
        return _code(value)
    return repr(value) if isinstance(value, _PLAIN) else f"<{type(value).__qualname__}>"


def _code(code: types.CodeType, doc: str | None = None) -> str:
    consts = code.co_consts
    if doc is not None and consts and consts[0] == doc:  # the docstring changes nothing
        consts = consts[1:]
    return f"{code.co_code.hex()}|{','.join(_value(c) for c in consts)}|{','.join(code.co_names)}"


def _describe(fn: Any, parts: list[str], seen: set[int]) -> None:
    if id(fn) in seen:
        return
    seen.add(id(fn))
    if isinstance(fn, types.MethodType):
        parts.append(f"bound to {_value(fn.__self__)}")
        fn = fn.__func__
    if isinstance(fn, functools.partial):
        parts.append(f"partial {_value(fn.args)} {_value(tuple(sorted(fn.keywords.items())))}")
        _describe(fn.func, parts, seen)
        return
    if not isinstance(fn, types.FunctionType):  # a callable object: its class's __call__ and its fields
        fields = sorted((k, _value(v)) for k, v in getattr(fn, "__dict__", {}).items())
        parts.append(f"object {type(fn).__qualname__} {fields}")
        call = inspect.getattr_static(type(fn), "__call__", None)
        if isinstance(call, types.FunctionType):
            _describe(call, parts, seen)
        return
    code = fn.__code__
    parts.append(f"{fn.__qualname__}:{_code(code, fn.__doc__)}")
    parts.append(f"defaults {_value(fn.__defaults__)} {_value(tuple((fn.__kwdefaults__ or {}).items()))}")
    cells = [c.cell_contents for c in fn.__closure__ or () if _filled(c)]
    referenced = [fn.__globals__[n] for n in _all_names(code) if n in fn.__globals__]
    for value in [*cells, *referenced]:
        if isinstance(value, types.FunctionType):
            _describe(value, parts, seen)
        else:
            parts.append(_value(value))


def _all_names(code: types.CodeType) -> list[str]:
    """Global names read by the code and by the functions, lambdas and comprehensions nested in it."""
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _all_names(const)
    return names


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True
