"""Errors raised across jointml. Each names the party and the field where it can."""

from __future__ import annotations


class JointMLError(Exception):
    """Base class of all jointml errors."""


class EncodingRangeError(JointMLError, ValueError):
    """A value does not fit the fixed-point / ring representation."""


class WireFormatError(JointMLError, ValueError):
    """A frame or message is malformed, truncated, or not what the protocol expects."""


class LinkError(JointMLError, ConnectionError):
    """Base class of link failures; `party` names the peer."""

    def __init__(self, message: str, party: str | None = None):
        super().__init__(message)
        self.party = party


class PeerUnreachable(LinkError):
    """A peer could not be reached before the connect deadline."""


class PeerClosed(LinkError):
    """A peer closed its connection (it exited or crashed)."""


class PeerAborted(LinkError):
    """A peer reported that its program failed; the message carries its error."""


class LinkTimeout(LinkError, TimeoutError):
    """No message arrived from a peer within the timeout."""


class ProtocolOutOfSync(LinkError):
    """The next message from a peer is not the one this party expects.

    Two parties running the same SPMD program diverged (different branches, a
    different number of operations): fail fast instead of hanging or computing
    garbage."""


class AuthenticationError(LinkError):
    """A peer's certificate does not match the party it claims to be."""


class ConfigError(JointMLError, ValueError):
    """A cluster or job configuration is invalid."""
