"""Closed-form predictions: pure functions of a step spec (model.spec.StepSpec: the model, its training setup and
the batch). No torch import."""
