"""`jointml bench he`: Paillier (DJN) and Okamoto-Uchiyama throughput on this machine.

``--scheme ou --scheme paillier`` (the default: both) measures each scheme in the same run,
at the same key size (2048 bits: ~112-bit security for both); every row names its ``scheme``.

One JSON figure per line: encryptions, decryptions, homomorphic additions, scalar
multiplications, sums, ciphertext compression and packed decryption, wire
(de)serialisation, each as ``per_second`` with the element count and wall time.
Parallel figures use ``n_jobs`` processes (default: all cores) and report the speed-up
over one core; additions and multiplications report the plaintext numpy rate of the
same operation beside them.  Each figure is the best of ``repeat`` runs, because the
machines are shared.

    python -m jointml.bench.he            # 2048-bit keys, 2000 values

Keys and values are generated locally: nothing crosses a link.

>>> rows = run(key_bits=512, n=8, n_jobs=1)
>>> rows[0]["figure"], rows[0]["key_bits"], "encrypt" in {r["figure"] for r in rows}
('keygen', 512, True)
>>> sorted({r["scheme"] for r in run_schemes(("ou", "paillier"), key_bits=512, n=8, n_jobs=1)})
['ou', 'paillier']
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.prg import public_rng
from ..he import check_scheme, compress, generate_keypair, generate_ou_keypair, parallel

#: Pool workers are started (and, with fork, inherit the parent's table) before timing.
_REPEAT = 2


def _best(fn: Callable[[], Any], repeat: int = _REPEAT) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _numpy_rate(fn: Callable[[], Any], count: int) -> float:
    # Plaintext baseline: repeat until the timing is meaningful.
    reps, t = 1, 0.0
    while t < 0.05:
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        t = time.perf_counter() - t0
        reps *= 4
    return count * reps / 4 / t


def run_schemes(schemes: Any = ("ou", "paillier"), **kw: Any) -> list[dict]:
    """:func:`run` for each scheme in turn, in one run (rows carry ``scheme``)."""
    return [row for s in schemes for row in run(scheme=s, **kw)]


def run(key_bits: int = 2048, n: int = 2000, n_jobs: int | None = None, scheme: str = "paillier") -> list[dict]:
    """Measure the throughput of `scheme` ("paillier" or "ou"); returns one dict per figure.

    >>> figs = run(key_bits=512, n=64, n_jobs=1, scheme="ou")
    >>> {f["figure"] for f in figs} >= {"encrypt", "decrypt", "add", "scalar_mul"}
    True
    """
    scheme = check_scheme(scheme)
    jobs = parallel.resolve_n_jobs(n_jobs)
    common = {"scheme": scheme, "key_bits": key_bits, "load_avg_1m": round(os.getloadavg()[0], 2)}
    figures: list[dict] = []

    def fig(name: str, count: int, seconds: float, **extra: Any) -> dict:
        d = {"figure": name, "per_second": round(count / seconds, 1), "n": count,
             "seconds": round(seconds, 4), **common, **extra}
        figures.append(d)
        return d

    # Public benchmark data (not secret): numpy's generator is fine here.
    rng = public_rng(7)
    x = rng.normal(size=n)
    y = rng.normal(size=n)

    t0 = time.perf_counter()
    pk, sk = (generate_ou_keypair if scheme == "ou" else generate_keypair)(key_bits)  # type: ignore[operator]
    fig("keygen", 1, time.perf_counter() - t0, plaintext_bits=pk.plaintext_bits)

    # Serial first: builds the fixed-base table(s) in this process (timed separately).
    t0 = time.perf_counter()
    pk.encrypt(x[:1], n_jobs=1)
    nonce_bits = getattr(pk, "r_bits", None) or getattr(pk, "alpha_bits", None)
    fig("table_precompute", 1, time.perf_counter() - t0, window=pk.window, nonce_exponent_bits=nonce_bits)
    n_serial = min(n, 1000)
    t1, _ = _best(lambda: pk.encrypt(x[:n_serial], n_jobs=1))
    fig("encrypt_1core", n_serial, t1, n_jobs=1)
    method = parallel.start_method()  # before the pool exists (its thread changes the answer)
    parallel.warm_up(jobs)
    if jobs > 1:  # workers build (or, with fork, inherit) their tables outside the timing
        pk.encrypt(x[: parallel.CHUNKS_PER_WORKER * jobs * 64], n_jobs=jobs)
    tp, ex = _best(lambda: pk.encrypt(x, n_jobs=jobs))
    fig("encrypt", n, tp, n_jobs=jobs, method="djn" if scheme == "paillier" else "ou",
        speedup_vs_1core=round((n / tp) / (n_serial / t1), 2), start_method=method if jobs > 1 else None)

    if scheme == "paillier":
        n_text = max(1, min(n, 100 * jobs))
        tt, _ = _best(lambda: pk.encrypt(x[:n_text], method="textbook", n_jobs=jobs), repeat=1)
        fig("encrypt_textbook", n_text, tt, n_jobs=jobs, method="textbook")

    ey = pk.encrypt(y, n_jobs=jobs)

    n_dec1 = min(n, 100)
    td1, _ = _best(lambda: sk.decrypt(ex[:n_dec1], n_jobs=1), repeat=1)
    fig("decrypt_1core", n_dec1, td1, n_jobs=1)
    n_dec = min(n, 500 * jobs)
    td, out = _best(lambda: sk.decrypt(ex[:n_dec], n_jobs=jobs), repeat=1)
    err = float(np.max(np.abs(out - x[:n_dec]))) if n_dec else 0.0
    fig("decrypt", n_dec, td, n_jobs=jobs, speedup_vs_1core=round((n_dec / td) / (n_dec1 / td1), 2),
        max_abs_error=err)

    ta, _ = _best(lambda: ex + ey)
    fig("add", n, ta, numpy_per_second=round(_numpy_rate(lambda: x + y, n)))
    tap, _ = _best(lambda: ex + y)
    fig("add_plain", n, tap)
    tm1, _ = _best(lambda: ex.mul(y, n_jobs=1))
    fig("scalar_mul_1core", n, tm1, n_jobs=1, scalar="float64, 32 fractional bits")
    tm, _ = _best(lambda: ex.mul(y, n_jobs=jobs))
    fig("scalar_mul", n, tm, n_jobs=jobs, scalar="float64, 32 fractional bits",
        numpy_per_second=round(_numpy_rate(lambda: x * y, n)))
    ts, _ = _best(lambda: ex.sum())
    fig("sum", n, ts)

    # Packing: bin sums of ~1000 gradients with 32 fractional bits fit 64-bit signed slots.
    slot_bits = 64
    k = pk.plaintext_bits // slot_bits
    tc, packed = _best(lambda: compress(ex, slot_bits, n_jobs=jobs), repeat=1)
    fig("compress", n, tc, slot_bits=slot_bits, values_per_ciphertext=k, ciphertexts=packed.size)
    tdp, vals = _best(lambda: sk.decrypt(packed, n_jobs=jobs), repeat=1)
    ok = bool(np.allclose(vals, x, atol=2.0**-30))
    fig("decrypt_packed_values", n, tdp, slot_bits=slot_bits, values_per_ciphertext=k,
        ciphertexts=packed.size, n_jobs=jobs, correct=ok,
        end_to_end_per_second=round(n / (tc + tdp), 1))

    tw, wire = _best(ex.to_wire)
    fig("serialize", n, tw, bytes=int(wire.nbytes))
    tr, _ = _best(lambda: pk.ciphertexts_from_wire(wire))
    fig("deserialize_validate", n, tr)
    return figures


def main() -> None:
    """Print :func:`run_schemes`'s figures (both schemes, 2048-bit keys, 2000 values), one JSON object per line."""
    for fig in run_schemes():
        print(json.dumps(fig), flush=True)


if __name__ == "__main__":
    main()
