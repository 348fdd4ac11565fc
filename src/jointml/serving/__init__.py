"""Online serving of joint models: one prediction server per organisation (see docs/serving.md)."""

from .predictor import FeatureSource, PartyPredictor, TableSource, open_source

__all__ = ["FeatureSource", "PartyPredictor", "TableSource", "open_source"]
