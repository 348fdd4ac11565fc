"""net: links between parties (in-process and TCP with mutual TLS), framing, counters."""

from .certs import create_dev_pki
from .link import Communicator, InProcessLink, Link, LinkStats

__all__ = ["Communicator", "InProcessLink", "Link", "LinkStats", "create_dev_pki"]
