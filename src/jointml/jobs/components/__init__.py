"""The pipeline components, one module per concern, and the aliases old pipeline files use.

| component | inputs | outputs |
| --- | --- | --- |
| `psi` | Inputs | AlignedFrame |
| `encode` | AlignedFrame, (Label) | AlignedFrame, Encoding, (Label) |
| `split` | AlignedFrame | Split |
| `scale` | Split | Split (each party's numeric columns standardised) |
| `woe_binning` | Split | WoeModel, Label |
| `train` | Split, (Label, WoeModel, Encoding) | ModelParts, Label |
| `predict` | ModelParts, (Split or AlignedFrame) | Scores |
| `evaluate` | Scores, Label, (ModelParts) | (metrics in the summary) |
| `select_features` | WoeModel | WoeModel (the kept columns) |
| `scorecard` | ModelParts, WoeModel | (points tables in the summary and `scorecard.<party>.json`) |
| `fl.train` | Inputs (horizontal: same columns) | ModelParts |

Model `ppdt` (module `ppdt`) adds `ppdt.train`/`.predict`. Models `split_nn` and `mpc_mlp`
(module `split_nn`) add `split_nn.train`/`.predict` and `mpc_mlp.train`/`.predict`.

Aliases: `ss_lr.train`, `ss_glm.train`, `secureboost.train`, `ss_xgb.train` are `train` with
`model` fixed; `secureboost.predict` and `ss_xgb.predict` are `predict`.

>>> from jointml.jobs.registry import COMPONENTS
>>> sorted(n for n, c in COMPONENTS.items() if c.alias_of == "train")
['mpc_mlp.train', 'ppdt.train', 'secureboost.train', 'split_nn.train', 'ss_glm.train', 'ss_lr.train', 'ss_xgb.train']
"""

from ..registry import alias
from . import encode, evaluate, fl, ppdt, predict, psi, scale, scorecard, select, split, split_nn, train, woe  # noqa: F401, I001

for _m in ("ss_lr", "ss_glm", "secureboost", "ss_xgb"):
    alias(f"{_m}.train", "train", f"`train` with `model: {_m}` (kept for existing pipeline files).", model=_m)
alias("secureboost.predict", "predict", "`predict` (kept for existing pipeline files); scores go to the label holder.")
alias("ss_xgb.predict", "predict", "`predict` (kept for existing pipeline files).")
