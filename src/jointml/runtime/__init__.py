"""runtime: party context, devices, objects, transfers, simulation launcher."""

from .cluster import ClusterConfig
from .context import PartyContext
from .device import NotOwnerError, PartyDevice, PartyObject
from .launcher import PartyFailed, run_party, simulate

__all__ = ["ClusterConfig", "PartyContext", "PartyDevice", "PartyObject", "NotOwnerError", "PartyFailed", "run_party", "simulate"]
