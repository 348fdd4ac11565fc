"""Horizontal federated learning: strategies, secure aggregation (SecAgg+), clients and trainers.

Parties hold rows with the same columns (`jointml.data.HDataFrame`); one party is the
aggregator. Each module states its adversary model; in short, with secure aggregation the
aggregator learns the sum of the surviving clients' (quantised, clipped) updates per round
and who dropped, and the clients learn the global model of each round.

>>> from jointml.ml.fl import FedAvg
>>> FedAvg().fraction_fit
1.0
"""

from .aggregate import WeightedSum, weighted_mean, weighted_sum
from .dp import DPFedAvg
from .estimator import STRATEGIES, FederatedDevice, FLLogisticRegression, FLMLPClassifier, make_strategy
from .gbdt import FLGBDTClassifier
from .models import FLModel, LogisticModel, MLPModel, local_train
from .secagg import SecAggResult, SecAggSession
from .secagg_params import SecAggParams
from .strategy import (
                       EvaluateIns,
                       EvaluateRes,
                       FedAdagrad,
                       FedAdam,
                       FedAvg,
                       FedAvgM,
                       FedOpt,
                       FedProx,
                       FedYogi,
                       FitIns,
                       FitRes,
                       Strategy,
                       sample_clients,
)
from .trainer import FederatedTrainer, FLClient

__all__ = ["WeightedSum", "weighted_mean", "weighted_sum", "Strategy", "FitIns", "FitRes", "EvaluateIns",
           "EvaluateRes", "FedAvg", "FedProx", "FedAvgM", "FedOpt", "FedAdagrad", "FedAdam", "FedYogi",
           "sample_clients", "FLModel", "LogisticModel", "MLPModel", "local_train", "SecAggSession", "SecAggResult",
           "SecAggParams", "FederatedTrainer", "FLClient", "FederatedDevice", "FLLogisticRegression", "FLMLPClassifier",
           "make_strategy", "STRATEGIES", "FLGBDTClassifier", "DPFedAvg"]
