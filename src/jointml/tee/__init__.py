"""Trusted execution: enclaves, remote attestation, sealing, attested channels, cluster manager.

**SIMULATION NOTICE.** There is no SGX/TDX hardware here. The "enclave" is a separate
OS process running a fixed, registered program, and the platform (quote signing,
sealing keys) is :class:`~jointml.tee.platform.SoftwareSimulationPlatform`: ordinary
keys in a directory of the machine. Every protocol around it is real (Ed25519-signed
quotes, X25519 + HKDF + AES-GCM channels, measurement-bound sealing, process
isolation), but it shows the protocol, not hardware protection. Quotes carry
``"platform": "jointml-software-simulation"`` and ``"simulation": true``; verifiers
refuse them unless ``Policy(allow_simulation=True)``; log lines say "SIMULATED TEE".

Modules
-------
* :mod:`.platform` -- the only hardware-specific interface: ``Platform`` (quote
  signing and verification, sealing-key derivation) and the simulation backend.
* :mod:`.attestation` -- registered programs, measurements (``measure``), ``Quote``,
  ``Policy``, ``Verifier``.
* :mod:`.channel` -- attested X25519/HKDF/AES-GCM channels with sequence numbers,
  party identity keys, one-shot encryption to an attested key, record encoding.
* :mod:`.sealing` -- ``seal``/``unseal`` bound to the measurement; data-key blobs.
* :mod:`.enclave` -- ``Enclave`` (host handle of an enclave process),
  ``EnclaveSession`` (a data owner's attested session).
* :mod:`.manager` -- ``ClusterManager``: admission after attestation, heartbeats,
  data-key distribution between attested enclaves, work queue, failover, scale-out.
* :mod:`.device` -- ``TeeDevice``: an attested enclave as a device of an SPMD program
  (``x.to(tee)``, ``tee.run(op)``, ``sealed.reveal(to=party)``).
* :mod:`.tecc` -- the TECC infrastructure: ``TeccCluster`` starts three role-bound
  enclaves of a program and relays their records; ``PeerLinks`` attests peers and
  carries jointml links over the attested enclave-to-enclave channels.

The programs that run inside enclaves are applications, in :mod:`jointml.apps`:
``jointml.apps.tee_train`` (centralised LR / GBDT training, online prediction, model
sealing, model shares for MPC, cluster tasks), :mod:`jointml.apps.hybrid` (train in the
TEE, predict under MPC) and ``jointml.apps.tecc`` (SS-LR under ABY3 with each MPC party
in its own attested enclave).

Threat model, per mode
----------------------
Common to all modes. *Trusted*: an enclave program whose measurement is on the
verifier's allow-list, and the platform that signs quotes (on hardware: the CPU
vendor). **In simulation, whoever can read the platform key directory or the enclave
process's memory -- the host's user and root -- is trusted too: the simulation
protects nothing against its host.** *Untrusted*: host OS and operator (they relay
every frame), the cluster manager, the network, storage, other parties. They see
message sizes and timing, quotes (measurement, public keys) and ciphertext; they can
drop, delay, reorder or replay messages (detected by nonces, per-session enclave
nonces and sequence numbers; denial of service is not prevented) and kill enclaves.
A data owner sends data only over a channel keyed by an attested X25519 key after
checking signature, nonce freshness, measurement and flags, and authenticates with an
Ed25519 identity key listed in the measured configuration; results go only to
parties named there. Not covered, even with hardware: side channels (cache, page
faults, timing), rollback of sealed state, a compromised vendor key, poisoned
training data from a malicious data owner. The simulation does not measure the
third-party libraries (numpy, scikit-learn, cryptography) a program imports.

*Centralised TEE training / online prediction* (:mod:`jointml.apps.tee_train`): one
enclave sees all data in plaintext; its compromise (in simulation: its host) exposes
everything. Cheap: plaintext speed inside. Result parties learn the model and
prediction scores; other data owners learn row and feature counts.

*Enclave cluster* (:mod:`.manager`): as above for every member; the data key exists
only inside attested enclaves (generated inside, moved between enclaves only after
mutual attestation, stored by the host only sealed to the measurement). The manager
is trusted for availability only. Not yet enforced: the host chooses which encrypted
shards a job combines (it could leave some out).

*Hybrid* (:mod:`jointml.apps.hybrid`): training as centralised; afterwards the
enclave releases the model only as secret shares to the configured MPC parties, so
prediction runs under the MPC protocol's model (semi2k: semi-honest, trusted dealer;
aby3: semi-honest honest majority) and no single party holds the model.

*TECC* (:mod:`.tecc`, :mod:`jointml.apps.tecc`): three enclaves with distinct,
role-bound measurements run ABY3 on replicated shares that data owners send to each
enclave separately; enclaves talk over pairwise attested channels relayed by the
hosts. Confidentiality needs at most one of the three TEEs broken (or, in
simulation, at most one curious host) -- TEE and MPC guarantees stack. A wrong
output share from one enclave is detected when the result party reconstructs; a
malicious enclave can otherwise bias the computation (semi-honest ABY3). Enclave
death aborts the job fast (no reassignment in TECC yet).

What is simulated: enclave memory isolation (OS process boundary only), the quote
signing key (a file, not fused into a CPU), the sealing root secret (a file), debug
mode (a flag, not a CPU state). Everything else is the real protocol.
"""

from .attestation import PROGRAMS, AttestedEnclave, Policy, Quote, TrustedPlatform, Verifier, measure
from .channel import ChannelError, PartyIdentity, SecureChannel
from .device import Sealed, TeeDevice, TeeDeviceError
from .enclave import Enclave, EnclaveDied, EnclaveError, EnclaveSession
from .manager import ClusterError, ClusterManager, Task
from .platform import SIMULATION_LABEL, SIMULATION_PLATFORM, AttestationError, Platform, SoftwareSimulationPlatform, load_platform
from .sealing import SealingError, seal, unseal

__all__ = [
    "PROGRAMS", "AttestedEnclave", "Policy", "Quote", "TrustedPlatform", "Verifier", "measure",
    "ChannelError", "PartyIdentity", "SecureChannel", "Enclave", "EnclaveDied", "EnclaveError", "EnclaveSession",
    "ClusterError", "ClusterManager", "Task", "SIMULATION_LABEL", "SIMULATION_PLATFORM", "AttestationError",
    "Platform", "SoftwareSimulationPlatform", "load_platform", "SealingError", "seal", "unseal",
    "Sealed", "TeeDevice", "TeeDeviceError",
]
