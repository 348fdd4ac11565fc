"""ml: secure models (linear/GLM under MPC, trees, neural networks, federated learning).

- `base`: `SecureEstimator` (scikit-learn contract: hyperparameters from the signature,
  validated in `fit`; `save`/`load` of one part per party through `runtime.persist`).
- `linear`: `SSLogisticRegression`, `SSGLM` (MPC); `tree`: SecureBoost (HE), SS-XGB (MPC).
- `checks`: input checks at the owner announced to every party (`announced_shape`);
  `shares`: a party's share as arrays / JSON for saved parts.
"""
