"""SecureBoost: gradient-boosted trees on vertically partitioned data with additively homomorphic
encryption (Okamoto-Uchiyama by default, ``he_scheme="paillier"`` for Paillier).

Parties.  The *label holder* (owner of ``y``; it may also hold features) and one or more
*feature holders*.  Rows are aligned beforehand (PSI).  Every party runs the same
program (SPMD): ``SecureBoostClassifier(ctx, ...).fit({party: X_p}, y)``; the first
argument may also be an :class:`~jointml.he.HeDevice` held by the label holder.

Protocol (per tree; Cheng et al., "SecureBoost: A Lossless Federated Learning
Framework", IEEE Intell. Syst. 2021, with XGBoost's objective):

1. The label holder computes gradients ``g`` and hessians ``h`` of the current margin,
   encodes both in fixed point (``hist_frac_bits`` fractional bits), packs the pair of
   each row into one plaintext (two signed slots wide enough for a sum over all rows)
   and encrypts it under its own HE key (``he_scheme``: Okamoto-Uchiyama, :mod:`jointml.he.ou`,
   by default, whose nonces are ``h^r``; or DJN-Paillier, nonces ``h_s^alpha``; the next
   tree's nonces are precomputed on a low-priority process pool while the feature holders
   build histograms, so an encryption is one table product ``g^m`` (OU) or one
   multiplication (Paillier) per row).  The
   ciphertexts, the random row sample and each holder's random column sample are sent
   to every feature holder.
2. Level by level, each feature holder bins its features locally (quantiles,
   ``max_bin``; a bin for missing values) and sums the encrypted (g, h) pairs of the
   rows of each node per (feature, bin): products of ciphertexts (mod ``n`` under OU,
   ``n^2`` under Paillier), over both
   cores (:meth:`jointml.he.HeArray.group_sum`, :mod:`jointml.he.grouped`).  Histogram
   subtraction: of two sibling nodes only the one
   with fewer sampled rows is summed; the label holder derives the other in plaintext
   as parent minus sibling.  The bin sums are compressed (many (g, h) pairs folded into
   one ciphertext), **re-randomised**, and sent back.
3. The label holder decrypts, evaluates every candidate split of every party
   (XGBoost gain ``GL^2/(HL+lambda) + GR^2/(HR+lambda) - G^2/(H+lambda)`` against
   ``gamma``, ``min_child_weight`` on both sides, missing values tried on both sides)
   and its own features in plaintext, and picks the best one per node.
4. It tells the owner of each chosen split its (feature, bin, default direction); the
   owner turns the bin into its threshold (kept at the owner only), and returns which
   rows of the node go left.  The label holder sends the new node of every row to all
   feature holders.  Leaf weights ``-eta * G / (H + lambda)`` are computed and kept at
   the label holder.

Protected mode (``protection="mpc"``, with ``dealer=`` a party holding no data): steps 1-3
run under semi2k instead (:mod:`.protected`): the label holder secret-shares (g, h) per
node, each feature holder's candidate splits are a private 0/1 matrix masked once, and the
scores, tie-break and argmax are the kernels of :mod:`jointml.ml.tree.split_kernels`
(shared with SS-XGB); only each node's split owner is opened to the label holder, and to
the owner its own candidate.  No Paillier key is used.  It stops the attack below; the
trees are the default mode's on the same data.

Prediction: each party evaluates only its own split nodes and sends, per row and
tree, the set of leaves compatible with its splits (a bit mask); the label holder
intersects the masks (exactly one leaf remains) and alone obtains the scores.

Security model (default mode, ``protection="none"``): semi-honest parties, no collusion
between the label holder and a feature holder; Okamoto-Uchiyama (default) or DJN-Paillier,
both with 2048-bit keys by default (~112-bit security; smaller keys in tests only; see
docs/security.md for OU's parameters).  A *deviating* label holder breaks it: encrypting crafted
values (row i -> 2^i) instead of its gradients, it reads from the decrypted bin sums the
bitmask of the rows of every bin, i.e. every feature holder's bin of every row and column
in one level (``tests/test_secureboost_protected.py``).  The protected mode
(:mod:`.protected`, which states what each party then learns, semi-honest and deviating,
and docs/security.md) gives such a label holder no bin sum: it learns the split owner per
node and, at a feature holder's split, the partition by one cut (which it can steer), at
most one bit per row and level (``max_depth`` bits per row per tree).
What each party learns in the default mode, exactly:

* **label holder**: for every node and every feature of every feature holder, the
  per-bin sums of g and h of the node's sampled rows (with squared error, h = 1, so
  these are per-bin row counts); the chosen split as (party, feature index, bin index)
  -- never the threshold value nor the bin boundaries of another party; for every
  split of another party the partition of the node's training rows (left/right), i.e.
  whether each row's feature value is below that (unknown) threshold; at prediction
  (and on the validation rows, when early stopping),
  for every row and every split node of another party (on the row's path or not), the
  side the row falls on, as the leaf masks are the conjunction of those bits; the
  column names and bin counts (number of distinct values, up to
  ``max_bin``) of the feature holders' columns.
* **feature holder**: the encrypted (g, h) (semantically secure: nothing); the slot
  width and fixed-point scale, which reveal ``ceil(log2(max(|g|, h)))`` of the tree's
  sampled rows, i.e. the magnitude of the largest gradient to within a factor 2
  (for the logistic loss this is always about 1); the random
  row sample of each tree and its own random column sample; the tree structure (which
  nodes split, which children exist) and the node every training row reaches at every
  level (needed to build histograms), therefore also the partitions induced by the
  other parties' splits, but not who made them, on which feature, nor any threshold,
  gain, gradient, label or leaf weight; for its own splits the (feature, bin,
  default direction) and threshold; with early stopping, the stop decision and the
  index of the best tree (hence the number of trees kept).
* Nothing else is revealed: ciphertexts returned by feature holders are re-randomised
  (otherwise the label holder could tell which of its ciphertexts were multiplied
  into a bin); scores of ``predict``/``predict_proba`` are revealed to the label
  holder only.  Model parts: each party saves only what it learned above.

Learned state (sklearn style, trailing underscore): ``trees_`` (each party's view of
every tree), ``label_owner_``, ``feature_parties_``, ``n_features_``; at the label
holder also ``base_score_``, ``importance_splits_`` / ``importance_gain_`` (split counts
and total gain per ``"party:column"`` in ``importance_names_``), ``feature_importances_``
(normalised total gain), ``get_importance("weight" | "gain" | "total_gain")`` and, with
an ``eval_set``, ``history_`` / ``best_iteration_``; ``timings_`` and ``tree_seconds_``
everywhere.

Cost per tree (2048-bit keys, n rows, d features at a holder, depth D): n encryptions at
the label holder, each ``g^m`` from a fixed-base table (6 products mod n for an 84-bit
packed pair under OU with a 14-bit window, the default from 10^6 encryptions per fit; 7 at 12) times a nonce precomputed in the
background (OU: 16 table products mod n at window 14, 19 at 12, ``h^r`` with a 224-bit ``r``; Paillier: ~38
multiplications mod n^2 with a 12-bit window); at most ~1.5 n d multiplications for the
bin sums at each holder (root: n d / 2 with feature pairs; deeper levels: the smaller
children only; the workers split the columns, so pairs are decided on whole nodes);
``2 * slot_bits`` squarings per (node, feature, bin) for the compression, and one
decryption per 8 bin sums at the label holder under OU (42-bit slots at 100,000 rows:
the exact bound ``rows * max|encoded g or h|``), ~23 under Paillier.  Traffic: n
ciphertexts (256 B under OU, 512 B under Paillier) per holder and tree, plus the
compressed sums and 4 bytes per row and level for the node positions.  ``jointml bench
trees`` measures it (100,000 rows, 20 + 20 features, depth 5, 32 bins: 10.0 s per tree
under OU before the session-5 changes, 32 s under Paillier, on two quiet cores).

Layout: :mod:`.estimator` (the estimators, the SPMD loop, prediction, model parts),
:mod:`.label_holder` (sampling, gradient encoding, split search), :mod:`.feature_holder`
(checks on received messages, split directions, leaf masks), :mod:`.histogram` (which
nodes are summed; compression), :mod:`.errors`. Messages: :mod:`jointml.runtime.collectives`;
the key: :class:`jointml.he.HeDevice`; model parts: :mod:`jointml.runtime.persist`.

Randomness: keys, nonces, row and column samples come from :mod:`secrets` /
:mod:`jointml.core.prg`.  Nothing received from a peer is unpickled: messages are
JSON-like headers plus raw arrays whose dtypes and shapes are checked.
"""

from __future__ import annotations

from .errors import SecureBoostError, SecureBoostParameterError
from .estimator import SecureBoostClassifier, SecureBoostRegressor

__all__ = ["SecureBoostClassifier", "SecureBoostError", "SecureBoostParameterError", "SecureBoostRegressor"]
