"""Online serving of joint models: one prediction server per organisation (see docs/serving.md)."""

from .predictor import FeatureSource, PartyPredictor, SQLSource, TableSource, open_source

__all__ = ["FeatureSource", "PartyPredictor", "SQLSource", "TableSource", "open_source"]
