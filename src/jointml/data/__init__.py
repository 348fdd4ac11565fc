"""data: partitioned frames, plaintext preprocessing and metrics, secure (MPC) statistics.

* `jointml.data.frames` - `VDataFrame` / `HDataFrame`: each partition stays at its owner;
* `jointml.data.preprocessing` - scalers, imputers, encoders, binners, WOE (scikit-learn
  contract), run by each owner on its own columns;
* `jointml.data.metrics` - plaintext metrics (AUC, KS, PSI, lift, ...);
* `jointml.data.secure` - statistics and metrics computed under MPC, revealing only the
  result (`secure.stats`, `secure.metrics`).

>>> from jointml.data import metrics
>>> metrics.roc_auc([0, 1, 0, 1], [0.2, 0.9, 0.4, 0.3])
0.75
"""
