"""dp: differential privacy - exact mechanisms, accounting, and enforced privacy budgets.

| module | what |
| --- | --- |
| `sampling` | exact discrete Laplace / Gaussian samplers on cryptographic random bits (CKS 2020) |
| `mechanisms` | Laplace, Gaussian (on a fixed grid), geometric, discrete Gaussian, exponential, randomized response; `Release` |
| `accounting` | `PrivacyEvent`, `Accountant` (PLD / RDP from Google's `dp-accounting`) |
| `budget` | `BudgetLedger`: per party and data source, SQLite, append-only, charged before a release |
|  | (`Ledger`: the interface shared with the job store's ledger, `jointml.orchestration.ledger`) |
| `secure` | noise added under MPC to secret-shared aggregates (each compute party adds its own noise) |
| `distributed` | distributed discrete Gaussian for secure aggregation (each client adds a share; Kairouz-Liu-Steinke 2021) |

What each party learns: a DP release's recipients learn the noisy value and the public noise
parameters; each module states the rest. Guarantees are record-level, per data source, for
the sensitivity the caller declares (contributions must be clipped to it).

>>> from jointml.dp import laplace, Accountant
>>> r = laplace(41.0, sensitivity=1.0, epsilon=1.0)
>>> acc = Accountant(); acc.add(r.event); round(acc.epsilon(0.0), 6)
1.0
"""

from .accounting import Accountant, PrivacyEvent, epsilon_of, rho_for
from .mechanisms import (
    Release,
    discrete_gaussian_int,
    exponential,
    gaussian,
    gaussian_rho,
    gaussian_sigma,
    geometric,
    laplace,
    randomized_response,
)
from .sampling import RandomBits

__all__ = [
    "Accountant",
    "PrivacyEvent",
    "epsilon_of",
    "rho_for",
    "Release",
    "laplace",
    "gaussian",
    "gaussian_sigma",
    "gaussian_rho",
    "geometric",
    "discrete_gaussian_int",
    "exponential",
    "randomized_response",
    "RandomBits",
]
