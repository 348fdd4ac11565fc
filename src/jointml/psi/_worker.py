"""A curve worker process: ``python -m jointml.psi._worker``, driven by `_pool.CurvePool`.

Reads requests from stdin until EOF (its party closed the pipe or died) and writes
results to stdout. Framing (little-endian), no pickle:

    request:  op u8 (1 = hash-to-curve and multiply, 2 = validate and multiply),
              out_bytes u8, secret 32 bytes, payload length u32, payload
    response: status u8 (0 ok, 1 invalid point, 2 error), a u32, b u32, then
              ok: a bytes of result; invalid point: index a, b bytes of reason;
              error: b bytes of message
"""

from __future__ import annotations

import sys

from ..core.errors import ProtocolError
from . import _curve
from ._pool import _REQ, _RESP


def main() -> None:
    rd, wr = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = rd.read(_REQ.size)
        if not head or len(head) < _REQ.size:
            return  # EOF: the party is done (or gone)
        op, out_bytes, secret, n = _REQ.unpack(head)
        payload = rd.read(n)
        if len(payload) != n:
            return
        try:
            if op == 1:
                out = _curve.h2c_exp(payload, secret)
            elif op == 2:
                out = _curve.exp_received(payload, secret, out_bytes)
            else:
                raise ProtocolError(f"unknown op {op}")
            wr.write(_RESP.pack(0, len(out), 0))
            wr.write(out)
        except _curve.InvalidPoint as e:
            why = e.why.encode()
            wr.write(_RESP.pack(1, e.index, len(why)))
            wr.write(why)
        except Exception as e:  # noqa: BLE001 - reported to the party, which raises
            msg = f"{type(e).__name__}: {e}".encode()[:4000]
            wr.write(_RESP.pack(2, 0, len(msg)))
            wr.write(msg)
        wr.flush()


if __name__ == "__main__":
    main()
