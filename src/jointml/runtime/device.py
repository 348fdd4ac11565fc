"""Devices and the plaintext objects that live on a single party.

`PartyDevice` runs code at one owner; its results are `PartyObject`s whose value
exists only at the owner (other parties hold a handle). Data leaves its owner only
through an explicit transfer: `obj.to(mpc_device)` secret-shares it, `obj.to(party)`
sends the plaintext to that party (a deliberate reveal).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Union

import numpy as np

from ..core.errors import JointMLError, NotOwnerError

if TYPE_CHECKING:  # pragma: no cover
    from .context import PartyContext

__all__ = ["NotOwnerError", "PartyDevice", "PartyObject"]


class PartyObject:
    """A value held in plaintext by one party.

    >>> def prog(ctx):
    ...     x = ctx.party("alice").run(lambda: np.arange(3))
    ...     return x.owner, x.is_local, repr(x)
    >>> out = simulate(prog, ["alice", "bob"], mode="thread")
    >>> out["alice"]
    ('alice', True, 'PartyObject(owner=alice, ndarray)')
    >>> out["bob"]
    ('alice', False, 'PartyObject(owner=alice, <remote>)')
    """

    __slots__ = ("device", "_value")

    def __init__(self, device: Union["PartyDevice", "_DetachedDevice"], value: Any = None):
        self.device = device
        self._value = value

    @property
    def owner(self) -> str:
        return self.device.name

    @property
    def is_local(self) -> bool:
        """True at the owner, the only party that holds the value."""
        return bool(self.device.ctx.me == self.device.name)

    @property
    def value(self) -> Any:
        """The plaintext (at the owner only; `NotOwnerError` elsewhere)."""
        if not self.is_local:
            raise NotOwnerError(f"the value of an object owned by '{self.owner}' is not available at '{self.device.ctx.me}'")
        return self._value

    def to(self, device: Any, **kw: Any) -> Any:
        """Transfer to another device (secret-share to an MPC device, or send the plaintext to a party)."""
        return device.transfer_in(self, **kw)

    def __reduce__(self) -> tuple[Any, tuple[str, str, Any]]:
        # A program may return a PartyObject to the launcher (same machine, same party):
        # what travels is the owner's name and, at the owner only, the value.
        return (_detached, (self.owner, self.device.ctx.me, self._value if self.is_local else None))

    def __repr__(self) -> str:
        v = f"{type(self._value).__name__}" if self.is_local else "<remote>"
        return f"PartyObject(owner={self.owner}, {v})"


class _DetachedContext:
    def __init__(self, me: str):
        self.me = me


class _DetachedDevice:
    """What a returned PartyObject keeps: who owns it and at which party it was returned."""

    def __init__(self, name: str, me: str):
        self.name = name
        self.ctx = _DetachedContext(me)

    def transfer_in(self, obj: PartyObject, **kw: Any) -> PartyObject:
        raise NotOwnerError("a PartyObject returned from a finished program cannot be transferred")


def _detached(owner: str, me: str, value: Any) -> "PartyObject":
    return PartyObject(_DetachedDevice(owner, me), value)


class PartyDevice:
    """Plaintext computation at one party.

    >>> def prog(ctx):
    ...     x = ctx.party("alice").run(np.arange, 3)         # value only at alice
    ...     y = x.to(ctx.party("bob"))                        # an explicit reveal to bob
    ...     return y.value.tolist() if ctx.me == "bob" else None
    >>> simulate(prog, ["alice", "bob"], mode="thread")["bob"]
    [0, 1, 2]
    """

    def __init__(self, ctx: "PartyContext", name: str):
        self.ctx = ctx
        self.name = name

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> PartyObject:
        """Run `fn` at this party only; PartyObject arguments of this party are unwrapped."""

        def unwrap(a: Any) -> Any:
            if isinstance(a, PartyObject):
                if a.owner != self.name:
                    raise NotOwnerError(
                        f"an object of '{a.owner}' was passed to code running at '{self.name}': transfer it first (x.to(...))"
                    )
                return a._value
            return a

        if self.ctx.me != self.name:
            for a in list(args) + list(kwargs.values()):
                unwrap(a)  # same check everywhere so all parties fail alike
            return PartyObject(self)
        return PartyObject(self, fn(*[unwrap(a) for a in args], **{k: unwrap(v) for k, v in kwargs.items()}))

    def __call__(self, value_fn: Callable[[], Any]) -> PartyObject:
        return self.run(value_fn)

    def put(self, value: Any) -> PartyObject:
        """Wrap a value that this party already holds (ignored elsewhere)."""
        return PartyObject(self, value if self.ctx.me == self.name else None)

    def transfer_in(self, obj: PartyObject, **kw: Any) -> PartyObject:
        """Send a plaintext ndarray from its owner to this party (an explicit reveal)."""
        if obj.owner == self.name:
            return obj
        ctx = self.ctx
        tag = ctx.next_uid("p2p")
        if ctx.me == obj.owner:
            ctx.comm.send(self.name, tag, np.asarray(obj._value))
            return PartyObject(self)
        if ctx.me == self.name:
            msg = ctx.comm.recv(obj.owner, tag)
            if len(msg.arrays) != 1:
                raise JointMLError(f"expected one array from {obj.owner}")
            return PartyObject(self, msg.arrays[0])
        return PartyObject(self)

    def __repr__(self) -> str:
        return f"PartyDevice({self.name})"
