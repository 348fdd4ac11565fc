"""SecureBoost at a feature holder: checks on what the label holder sends, split
directions of its own nodes, and its leaf masks at prediction.

A feature holder sees ciphertexts, its own features and thresholds, the row sample, its
column sample and the node of every training row (see :mod:`jointml.ml.tree.secureboost`
for the whole list); every array it receives is checked here before use.

>>> tree = {"left": [1, -1, -1], "right": [2, -1, -1], "mine": [True, False, False],
...         "feature": [0, -1, -1], "threshold": [0.5, np.nan, np.nan], "default_left": [False, False, False]}
>>> leaf_masks(tree, np.array([[0.1], [0.9], [np.nan]])).tolist()
[[True, False], [False, True], [False, True]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import SecureBoostError

__all__ = ["check_sample", "check_gradients", "directions", "leaf_masks", "leaf_ids"]


def check_sample(rows: np.ndarray, cm: np.ndarray, n: int, n_features: int, me: str, label: str) -> np.ndarray:
    """Validate the row sample and column mask from the label holder; the chosen columns.

    >>> check_sample(np.array([0, 2]), np.array([1, 0], np.uint8), 3, 2, "shop", "bank").tolist()
    [0]
    """
    if rows.dtype != np.int64 or rows.ndim != 1 or not len(rows) or rows.min() < 0 or rows.max() >= n \
            or (np.diff(rows) <= 0).any():
        raise SecureBoostError(f"party '{me}': invalid row sample from '{label}'")
    if cm.shape != (n_features,):
        raise SecureBoostError(f"party '{me}': invalid column sample from '{label}'")
    return np.flatnonzero(cm)


def check_gradients(enc: Any, n_rows: int, budget_bits: int, me: str, label: str) -> tuple[int, int]:
    """Check the layout of the packed (g, h) ciphertexts; returns (slot_bits, frac_bits)."""
    lay, F = enc.layout, enc.frac_bits
    if lay is None or lay.slot_shape != (2,) or not lay.signed or lay.compressed \
            or not (2 <= lay.slot_bits and 2 * lay.slot_bits <= budget_bits) or not 0 <= F < lay.slot_bits:
        raise SecureBoostError(f"party '{me}': invalid slot layout ({lay}, {F} fractional) from '{label}'")
    if enc.shape != (n_rows,):
        raise SecureBoostError(f"party '{me}': {enc.shape} ciphertexts for {n_rows} sampled rows")
    return lay.slot_bits, F


def directions(codes: np.ndarray, bins: Any, my_nodes: list[tuple]) -> dict[int, np.ndarray]:
    """Which rows of each of my split nodes go left: bin <= b, missing by the default direction."""
    go_left = {}
    for node, at, f, b, dflt in my_nodes:
        c = codes[at, f].astype(np.int64)
        miss = c == len(bins.cuts[f]) + 1
        go_left[node] = np.where(miss, dflt, c <= b)
    return go_left


def leaf_masks(tree: dict, X: np.ndarray) -> np.ndarray:
    """(rows, n_leaves) bool: leaves compatible with this party's own splits."""
    left, right, mine = tree["left"], tree["right"], tree["mine"]
    n = X.shape[0]
    reach = {0: np.ones(n, dtype=bool)}
    leaves = []
    for node in range(len(left)):  # children always have larger ids than parents
        r = reach.pop(node)
        if left[node] < 0:
            leaves.append(r)
            continue
        if mine[node]:
            x = X[:, tree["feature"][node]]
            go = x < tree["threshold"][node]
            go = np.where(np.isnan(x), bool(tree["default_left"][node]), go)
            reach[left[node]] = r & go
            reach[right[node]] = r & ~go
        else:
            reach[left[node]] = r
            reach[right[node]] = r
    return np.stack(leaves, axis=1) if leaves else np.ones((n, 1), dtype=bool)


def leaf_ids(tree: dict) -> list[int]:
    """Node ids of the leaves, in order.

    >>> leaf_ids({"left": [1, -1, -1]})
    [1, 2]
    """
    return [i for i, node_left in enumerate(tree["left"]) if node_left < 0]
