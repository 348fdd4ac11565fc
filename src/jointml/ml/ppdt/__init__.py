"""ppdt: the privacy-preserving data transform (DP-PCA / random projection + noise) for joint modelling.

| module | what |
| --- | --- |
| `transform` | `PPDT`: one party's features to k noisy dimensions with a stated (epsilon, delta) |
| `joint` | `ppdt_share`: every partner's PPDT sent to the modeller, charged to the budget ledgers |
| `model` | `NoiseAwareLinear`: least squares on the releases' moments, corrected for their noise; owners score their own rows |
| `estimator` | `PPDTClassifier`: the `ppdt` pipeline model (releases to the label holder, owners score) |
| `attack` | inversion attacks (least squares, learned decoder): the measured reconstruction error |
| `synthetic` | a public synthetic credit set for the utility curve |

Each module states what each party learns; in short, a PPDT row is a record-level DP
release of that record, nothing more is claimed.

>>> from jointml.ml.ppdt import PPDT
>>> PPDT(k=2, epsilon=1.0).k
2
"""

from .attack import decoder_error, lstsq_error
from .estimator import PPDTClassifier
from .joint import PPDTData, ppdt_frame, ppdt_share
from .model import NoiseAwareLinear, Release
from .synthetic import make_credit
from .transform import PPDT, random_orthonormal

__all__ = [
    "PPDTClassifier", "NoiseAwareLinear", "Release", "PPDT", "random_orthonormal", "ppdt_share", "ppdt_frame", "PPDTData",
    "lstsq_error", "decoder_error", "make_credit",
]
