"""net: links between parties (in-process and TCP with mutual TLS), framing, counters."""

from .link import Communicator, InProcessLink, Link, LinkStats
from .certs import create_dev_pki

__all__ = ["Communicator", "InProcessLink", "Link", "LinkStats", "create_dev_pki"]
