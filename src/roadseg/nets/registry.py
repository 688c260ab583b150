"""The network registry: networks by name, as timm has them.

A network module registers its class with ``@register("name")``; ``create("name", **settings)``
builds it and ``names()`` lists what is registered. The trainer, checkpoints (their ``arch`` key)
and the CLI's ``--arch`` all go through here, so a new network is one new module in ``roadseg.nets``.

Usage::

    net = create("unet", num_classes=11, base_filters=16)
    names()                               # ['unet', ...]
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, TypeVar

from ..errors import InputError
from .base import SegNet

DEFAULT = "unet"
_REGISTRY: dict[str, type[SegNet]] = {}
T = TypeVar("T", bound=type[SegNet])


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make the SegNet subclass available as `name`."""
    def add(cls: T) -> T:
        if not issubclass(cls, SegNet):
            raise TypeError(f"{cls.__name__} is not a roadseg.nets.SegNet")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"a network named '{name}' is already registered")
        cls.arch = name
        _REGISTRY[name] = cls
        return cls
    return add


def names() -> list[str]:
    """The registered network names, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> type[SegNet]:
    """The class registered as `name`; an unknown name is an InputError listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(None, f"unknown network '{name}'", f"choose --arch from {', '.join(names())}") from None


def accepted_settings(name: str) -> list[str]:
    """The keyword settings the network `name` takes."""
    params = inspect.signature(get(name).__init__).parameters
    return [p for p, v in params.items() if p != "self" and v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)]


def create(name: str, **settings: Any) -> SegNet:
    """Build the network `name` with `settings`; a setting it does not take is an InputError."""
    cls = get(name)
    unknown = sorted(set(settings) - set(accepted_settings(name)))
    if unknown:
        raise InputError(None, f"network '{name}' has no setting {', '.join(unknown)}",
                         f"its settings are {', '.join(accepted_settings(name))}")
    try:
        return cls(**settings)
    except (TypeError, ValueError) as e:
        raise InputError(None, f"network '{name}' cannot be built with these settings ({e})",
                         "check --arch and the network flags") from None
