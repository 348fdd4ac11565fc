"""jointml: trusted privacy computing for joint modelling across organisations.

Layers (imports go downward only): core -> net -> runtime -> mpc / he / psi -> data -> ml -> jobs -> cli.
"""

__version__ = "0.1.0"
