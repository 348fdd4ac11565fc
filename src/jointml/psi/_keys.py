"""Reading a party's keys in bounded batches and hashing them to fixed-size digests.

A party's input may be a DataFrame, Series, ndarray, list, a CSV path (read with
pandas ``chunksize``) or any iterable of such chunks. Only the key columns are read
and each batch is reduced at once to 32-byte digests, so memory holds one batch of
raw keys plus 32 bytes per id, however large the input file.

Canonical encoding of a row's key tuple (what makes the same id hash the same at
every party): each column has one *kind* for the whole set, ``int`` or ``str``;
a row is the concatenation of, per column,

    b"i" + int64 little-endian                     (integers, |x| < 2^63)
    b"s" + uint32 little-endian length + UTF-8     (strings, compared byte for byte)

which is self-delimiting, hence injective. The digest is BLAKE2b-256 with a PSI
personalisation (domain separation from every other hash in the system). Integer
and string ids never match each other (42 != "42"); the parties compare their
column kinds before any id is exchanged and fail with a clear error on a mismatch.
Floats are accepted only when every value is integral (a CSV integer column with
blanks is read as float: blanks are reported as missing keys).

>>> import pandas as pd
>>> d, kinds, names = digest_keys(pd.DataFrame({"id": [1, 2], "phone": ["555", "556"]}), ["id", "phone"], party="bank")
>>> len(d), kinds, names
(64, ['int', 'str'], ['id', 'phone'])
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Callable, cast

import numpy as np

from ..core.errors import DataError

DIGEST_BYTES = 32
_PERSON = b"jointml-psi-key1"  # BLAKE2b personalisation: at most 16 bytes
_INT64_MAX = np.iinfo(np.int64).max


class KeyDataError(DataError):
    """Bad key data at one party: missing values, unsupported types, wrong columns (a `DataError`).

    >>> isinstance(KeyDataError("key column 'id' has 2 missing values", party="bank"), ValueError)
    True
    """


class DuplicateKeyError(DataError):
    """A party's key set contains the same key tuple more than once (PSI needs a set).

    Attributes: `party`, `n_keys` (distinct key tuples that repeat), `n_rows` (surplus rows).

    >>> e = DuplicateKeyError("party 'bank': 1 key value(s) repeat", party="bank", n_keys=1, n_rows=2)
    >>> (e.party, e.n_keys, e.n_rows, isinstance(e, ValueError))
    ('bank', 1, 2, True)
    """

    def __init__(self, message: str, party: str, n_keys: int, n_rows: int):
        super().__init__(message, party=party)
        self.n_keys, self.n_rows = n_keys, n_rows


def _pd():
    import pandas as pd  # imported lazily: the pool workers never need pandas

    return pd


# -- sources ------------------------------------------------------------------------
def iter_batches(
    data: Any, key_columns: Sequence[str] | None, batch_size: int, party: str, read_csv_kwargs: Mapping | None = None
) -> Iterator[Any]:
    """Yield the key part of `data` in batches of at most `batch_size` rows (frames,
    series or arrays), reading CSV files and iterators lazily.

    >>> import pandas as pd
    >>> [len(b) for b in iter_batches(pd.DataFrame({"id": [1, 2, 3]}), ["id"], 2, "bank")]
    [2, 1]
    """
    pd = _pd()
    if isinstance(data, (str, os.PathLike)):
        kw = dict(dtype=str, keep_default_na=False, na_values=[""])  # ids are text: keep "007"
        kw.update(read_csv_kwargs or {})
        if key_columns is not None:
            kw["usecols"] = list(key_columns)
        try:
            reader = pd.read_csv(data, chunksize=batch_size, **kw)
        except ValueError as e:  # usecols naming a missing column
            raise KeyDataError(
                f"party '{party}': cannot read key columns {list(key_columns or [])} from {data}: {e}", party=party
            ) from None
        with reader:
            yield from reader
        return
    if isinstance(data, (pd.DataFrame, pd.Series, np.ndarray)):
        for start in range(0, len(data), batch_size):
            yield data[start : start + batch_size] if isinstance(data, np.ndarray) else data.iloc[start : start + batch_size]
        if len(data) == 0:
            yield data  # an empty set still tells its columns and kinds
        return
    if isinstance(data, (list, tuple)):
        yield from iter_batches(_list_frame(data), key_columns, batch_size, party)
        return
    if isinstance(data, Iterable):  # an iterator of chunks, e.g. pd.read_csv(..., chunksize=)
        for chunk in data:
            if isinstance(chunk, (list, tuple)):
                chunk = _list_frame(chunk)
            if len(chunk) > batch_size:
                yield from iter_batches(chunk, key_columns, batch_size, party)
            else:
                yield chunk
        return
    raise KeyDataError(f"party '{party}': unsupported key input of type {type(data).__name__}", party=party)


def _list_frame(rows: Sequence) -> Any:
    pd = _pd()
    if len(rows) and isinstance(rows[0], tuple):
        return pd.DataFrame(list(rows))
    return pd.Series(list(rows), dtype=object)


def _columns(batch: Any, key_columns: Sequence[str] | None, party: str) -> tuple[list[str], list[np.ndarray]]:
    pd = _pd()
    if isinstance(batch, pd.Series):
        return [str(batch.name) if batch.name is not None else "key"], [batch.to_numpy()]
    if isinstance(batch, np.ndarray):
        if batch.ndim == 1:
            return ["key"], [batch]
        if batch.ndim == 2:
            return [f"key{j}" for j in range(batch.shape[1])], [batch[:, j] for j in range(batch.shape[1])]
        raise KeyDataError(f"party '{party}': key array must be 1-D or 2-D, got shape {batch.shape}", party=party)
    if isinstance(batch, pd.DataFrame):
        cols = list(key_columns) if key_columns is not None else list(batch.columns)
        missing = [c for c in cols if c not in batch.columns]
        if missing:
            raise KeyDataError(
                f"party '{party}': key columns {missing} not found (columns: {list(batch.columns)[:20]})", party=party
            )
        if not cols:
            raise KeyDataError(f"party '{party}': no key columns", party=party)
        return [str(c) for c in cols], [batch[c].to_numpy() for c in cols]
    raise KeyDataError(f"party '{party}': unsupported key batch of type {type(batch).__name__}", party=party)


# -- kinds and canonical values -------------------------------------------------------
def _normalise(values: np.ndarray, name: str, party: str, offset: int) -> tuple[str | None, np.ndarray]:
    """(kind, values) with kind 'int' (int64 array) or 'str' (object array of str)."""
    pd = _pd()
    n = len(values)
    if n == 0:
        return None, values
    if isinstance(values.dtype, pd.CategoricalDtype) or hasattr(values, "categories"):
        values = np.asarray(values, dtype=object)
    dk = values.dtype.kind
    if dk == "b":
        raise KeyDataError(f"party '{party}': key column '{name}' holds booleans; ids must be integers or strings", party=party)
    if dk in "iu":
        if dk == "u" and values.dtype.itemsize == 8 and n and values.max() > _INT64_MAX:
            raise KeyDataError(f"party '{party}': key column '{name}' has integers >= 2^63; pass them as strings", party=party)
        return "int", values.astype(np.int64, copy=False)
    if dk == "f":
        bad = ~np.isfinite(values)
        if bad.any():
            _missing(name, party, bad, offset)
        if (np.floor(values) != values).any() or (np.abs(values) >= 2.0**63).any():
            i = int(np.flatnonzero((np.floor(values) != values) | (np.abs(values) >= 2.0**63))[0])
            raise KeyDataError(
                f"party '{party}': key column '{name}' has a non-integer float at row {offset + i}; "
                "ids must be integers or strings",
                party=party,
            )
        return "int", values.astype(np.int64)
    if dk in "OUS" or str(values.dtype) == "string":
        values = np.asarray(values, dtype=object)
        miss = pd.isna(values)
        if miss.any():
            _missing(name, party, miss, offset)
        types = {type(v) for v in values}
        if types <= {str}:
            return "str", values
        if all(issubclass(t, (int, np.integer)) and not issubclass(t, (bool, np.bool_)) for t in types):
            try:
                return "int", np.array([int(v) for v in values], dtype=np.int64)
            except OverflowError:
                raise KeyDataError(
                    f"party '{party}': key column '{name}' has integers beyond int64; pass them as strings", party=party
                ) from None
        names = sorted(t.__name__ for t in types)
        raise KeyDataError(
            f"party '{party}': key column '{name}' mixes value types {names}; ids must be all integers or all strings",
            party=party,
        )
    raise KeyDataError(
        f"party '{party}': key column '{name}' has dtype {values.dtype}; convert ids to integers or strings", party=party
    )


def _missing(name: str, party: str, mask: np.ndarray, offset: int) -> None:
    # Row numbers, never values: this message may travel to the peers in an abort frame.
    first = int(np.flatnonzero(mask)[0])
    raise KeyDataError(
        f"party '{party}': key column '{name}' has {int(mask.sum())} missing values "
        f"(first at row {offset + first}); every row needs a key",
        party=party,
    )


# -- digests ---------------------------------------------------------------------------
def _digest_fixed(buf: bytes, width: int, n: int) -> bytes:
    mv = memoryview(buf)
    blake = hashlib.blake2b
    return b"".join(
        [blake(mv[i : i + width], digest_size=DIGEST_BYTES, person=_PERSON).digest() for i in range(0, n * width, width)]
    )


def encode_digests(kinds: Sequence[str], cols: Sequence[np.ndarray]) -> bytes:
    """32-byte digests of the canonical encodings of the rows (see module docstring).

    >>> len(encode_digests(["int"], [np.array([7, 8])])) == 2 * DIGEST_BYTES
    True
    """
    n = len(cols[0])
    if n == 0:
        return b""
    if all(k == "int" for k in kinds):
        # Fixed-width rows: one vectorised pack, then one hash call per row on a slice.
        width = 9 * len(cols)
        rec = np.empty((n, width), dtype=np.uint8)
        for j, c in enumerate(cols):
            rec[:, 9 * j] = ord("i")
            rec[:, 9 * j + 1 : 9 * j + 9] = np.ascontiguousarray(c, dtype="<i8").view(np.uint8).reshape(n, 8)
        return _digest_fixed(rec.tobytes(), width, n)
    parts: list[list[bytes]] = []
    for k, c in zip(kinds, cols):
        if k == "int":
            b = np.ascontiguousarray(c, dtype="<i8").tobytes()
            parts.append([b"i" + b[8 * i : 8 * i + 8] for i in range(n)])
        else:
            enc = [v.encode("utf-8") for v in c]
            parts.append([b"s" + len(e).to_bytes(4, "little") + e for e in enc])
    blake = hashlib.blake2b
    rows: Iterable[bytes] = parts[0] if len(parts) == 1 else map(b"".join, zip(*parts))
    return b"".join([blake(r, digest_size=DIGEST_BYTES, person=_PERSON).digest() for r in rows])


def digest_keys(
    data: Any,
    key_columns: Sequence[str] | None,
    party: str,
    batch_size: int = 100_000,
    read_csv_kwargs: Mapping | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[bytes, list[str | None], list[str]]:
    """Digest every row of `data`: (digests, kinds per column, column names).

    Kinds must stay the same across batches; `kinds[j]` is None only for an empty set.

    >>> import pandas as pd
    >>> digests, kinds, names = digest_keys(pd.DataFrame({"id": [1, 2, 3]}), ["id"], "bank")
    >>> len(digests) // DIGEST_BYTES, kinds, names
    (3, ['int'], ['id'])
    """
    out: list[bytes] = []
    kinds: list[str | None] = []
    names: list[str] | None = None
    offset = 0
    for batch in iter_batches(data, key_columns, batch_size, party, read_csv_kwargs):
        bnames, cols = _columns(batch, key_columns, party)
        if names is None:
            names = bnames
            kinds = [None] * len(cols)
        elif len(bnames) != len(names):
            raise KeyDataError(
                f"party '{party}': batch at row {offset} has {len(bnames)} key columns, earlier batches {len(names)}", party=party
            )
        norm = [_normalise(c, nm, party, offset) for c, nm in zip(cols, names)]
        for j, (k, _) in enumerate(norm):
            if k is None:
                continue
            if kinds[j] is None:
                kinds[j] = k
            elif kinds[j] != k:
                raise KeyDataError(
                    f"party '{party}': key column '{names[j]}' holds {kinds[j]} ids before row {offset} "
                    f"and {k} ids from there on",
                    party=party,
                )
        n = len(cols[0])
        if n:
            batch_kinds = cast("list[str]", [k for k, _ in norm])  # n > 0: every column has a kind
            out.append(encode_digests(batch_kinds, [v for _, v in norm]))
        offset += n
        if on_batch is not None:
            on_batch(n)
    if names is None:  # an iterator that yielded nothing
        names = [str(c) for c in key_columns] if key_columns is not None else ["key"]
        kinds = [None] * len(names)
    return b"".join(out), kinds, names


def check_unique(digests: bytes, party: str, names: Sequence[str]) -> None:
    """Raise `DuplicateKeyError` if a key tuple occurs twice (exact, vectorised).

    >>> import pandas as pd
    >>> d = digest_keys(pd.DataFrame({"id": [5, 6, 5]}), None, "bank")[0]
    >>> try:
    ...     check_unique(d, "bank", ["id"])
    ... except DuplicateKeyError as e:
    ...     print(e.party, e.n_keys, e.n_rows)
    bank 1 1
    """
    n = len(digests) // DIGEST_BYTES
    if n < 2:
        return
    d = np.frombuffer(digests, dtype="<u8").reshape(n, 4)
    order = np.argsort(d[:, 0], kind="stable")
    w0 = d[order, 0]
    run = np.flatnonzero(w0[1:] == w0[:-1])  # equal first words: candidates (almost surely true duplicates)
    if run.size == 0:
        return
    first_seen: dict[bytes, int] = {}
    dup_keys: set[bytes] = set()
    surplus = 0
    example = (n, n)  # the duplicate pair with the lowest first row (every row is < n)
    for r in sorted(set(run.tolist()) | set((run + 1).tolist())):
        row = int(order[r])
        key = digests[row * DIGEST_BYTES : (row + 1) * DIGEST_BYTES]
        if key in first_seen:
            surplus += 1
            dup_keys.add(key)
            if min(first_seen[key], row) < example[0]:
                example = (min(first_seen[key], row), max(first_seen[key], row))
        else:
            first_seen[key] = row
    if surplus:
        # Counts and row numbers only, never key values: this message reaches the peers.
        raise DuplicateKeyError(
            f"party '{party}': {len(dup_keys)} key value(s) of {list(names)} occur more than once "
            f"({surplus} surplus rows; e.g. rows {example[0]} and {example[1]}); PSI needs unique keys: deduplicate first",
            party=party,
            n_keys=len(dup_keys),
            n_rows=surplus,
        )
