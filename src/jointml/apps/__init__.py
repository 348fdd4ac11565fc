"""apps: programs that run inside (SIMULATED) enclaves, built on ``ml/`` and ``mpc/``.

The TEE layer (:mod:`jointml.tee`) is infrastructure: platform, attestation, sealing,
sessions, the TEE device, the cluster manager and the TECC role enclaves with their
attested links. The applications that run inside those enclaves live here:

* :mod:`.tee_train` -- the registered program ``jointml.apps.tee_train``: centralised
  LR / GBDT training in one attested enclave, online prediction, model sealing, model
  shares for MPC, sharded ridge regression on an enclave cluster; SPMD helpers over a
  :class:`~jointml.tee.device.TeeDevice`.
* :mod:`.hybrid` -- train in the TEE, predict under MPC (semi2k or aby3).
* :mod:`.tecc` -- the registered program ``jointml.apps.tecc``: each ABY3 party in its
  own attested enclave, training :class:`jointml.ml.linear.SSLogisticRegression` over
  the enclave-to-enclave links.

Every enclave here is a software simulation (see :mod:`jointml.tee`): it shows the
protocol, not hardware protection. The modules are imported on demand (an enclave
imports only its own program), so this package imports nothing itself.
"""
