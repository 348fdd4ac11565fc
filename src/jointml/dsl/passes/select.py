"""Operator selection by cost (placeholder: the default implementation everywhere)."""

from __future__ import annotations

from typing import Any

from ..ir import Graph

__all__ = ["select"]


def select(g: Graph, **_: Any) -> Graph:
    return g
