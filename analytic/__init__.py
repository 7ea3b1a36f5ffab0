"""Closed-form predictions: pure functions of a ModelConfig and a batch size. No torch import."""
