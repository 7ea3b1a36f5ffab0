"""Reference Transformer LM, its configuration, the training setup, the step spec and the one training step."""
from model.config import PRESETS, ModelConfig, preset
from model.setup import SETUP_OPTIONS, Setup
from model.spec import StepSpec
from model.vocabulary import CATEGORIES, COMPONENTS, DEVICES, LAYER_COMPONENTS, MARKS, OPTIMIZERS, PHASES

__all__ = ["ModelConfig", "Setup", "SETUP_OPTIONS", "StepSpec", "PRESETS", "preset",
           "PHASES", "CATEGORIES", "COMPONENTS", "LAYER_COMPONENTS",
           "OPTIMIZERS", "DEVICES", "MARKS", "TransformerLM", "make_optimizer", "train_step"]


def __getattr__(name):  # torch-dependent names are imported lazily so that analytic/ never pulls torch
    if name == "TransformerLM":
        from model.transformer import TransformerLM
        return TransformerLM
    if name in ("make_optimizer", "train_step"):
        import model.step as step
        return getattr(step, name)
    raise AttributeError(name)
