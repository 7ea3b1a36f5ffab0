"""Models and optimizers a user wrote, and Hugging Face models: built for a step from the standard sizes.

A model source (ModelConfig.source, the CLI's --model) other than 'builtin' is one of
  FILE.py:NAME, package.module:NAME   NAME a callable taking the standard sizes as keyword arguments (vocab_size,
                                      context_length, num_layers, d_model, num_heads, d_ff; kv_heads and dropout
                                      only where its signature names them) that returns an nn.Module whose forward
                                      takes token ids [B, T] (int64) and returns logits [B, T, V];
  hf:gpt2, hf:llama, hf:PATH.json     a transformers GPT2LMHeadModel or LlamaForCausalLM built from a config
                                      object (model.hf), random weights, never the hub.
A file is loaded by path under a private module name (one per resolved path, so a user's model.py never shadows
ours and is never imported twice). The model is wrapped in UserLM, which gives it the built-in model's interface:
`config`, forward(tokens) and loss(tokens, targets) (cross-entropy on the targets as model.transformer computes it;
a Hugging Face model's own loss from labels). An optimizer class (Setup.optimizer_class, --optimizer-class) is
loaded the same way and must subclass torch.optim.Optimizer. Every problem is one ValueError naming the source.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from model import hf
from model.config import BUILTIN, ModelConfig, source_kind
from model.setup import Setup

SIZES = ("vocab_size", "context_length", "num_layers", "d_model", "num_heads", "d_ff")
OPTIONAL_SIZES = ("kv_heads", "dropout")  # passed only to a factory whose signature names them


def load_callable(reference: str, what: str = "model") -> Callable:
    """The object NAME of 'FILE.py:NAME' (the file loaded by path under a private module name, once) or of
    'package.module:NAME' (imported)."""
    where, _, name = reference.rpartition(":")
    if where.endswith(".py"):
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"{what} {reference}: no file {where}")
        module_name = "_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:16]
        module = sys.modules.get(module_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException as error:
                del sys.modules[module_name]
                raise ValueError(f"{what} {reference}: importing {where} failed: "
                                 f"{type(error).__name__}: {error}") from None
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as error:
            raise ValueError(f"{what} {reference}: cannot import {where}: {error}") from None
    try:
        return getattr(module, name)
    except AttributeError:
        raise ValueError(f"{what} {reference}: {where} has no {name}") from None


def factory_arguments(factory: Callable, config: ModelConfig, reference: str) -> dict[str, Any]:
    """The sizes a factory takes: the standard ones, and kv_heads and dropout where its signature names them; one
    ValueError where the config sets one it does not name."""
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        parameters = {}
    arguments = {name: getattr(config, name) for name in SIZES}
    defaults = {"kv_heads": config.num_heads, "dropout": 0.0}
    for name in OPTIONAL_SIZES:
        if name in parameters:
            arguments[name] = getattr(config, name)
        elif getattr(config, name) != defaults[name]:
            raise ValueError(f"model {reference}: {name}={getattr(config, name)} is set, but {factory.__name__}() "
                             f"takes no {name} argument")
    return arguments


class UserLM(nn.Module):
    """A user's or Hugging Face model with the built-in model's interface. `inner` is the user's module; module
    paths are read from it (profiler.measuring.tracker.attributed_modules)."""

    def __init__(self, inner: nn.Module, config: ModelConfig, hf: bool = False):
        super().__init__()
        self.inner, self.config, self.hf = inner, config, hf

    def forward(self, tokens):  # [B, T] int64 -> logits [B, T, V]
        if self.hf:
            with hf.device_answers():
                logits = self.inner(input_ids=tokens).logits
        else:
            logits = self.inner(tokens)
        expected = (*tokens.shape, self.config.vocab_size)
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != expected:
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(f"model {self.config.source}: forward returned {got}, expected logits of shape "
                             f"{list(expected)} [B, T, V]")
        return logits

    def loss(self, tokens, targets):  # a 0-dim tensor
        if self.hf:  # the loss as Hugging Face computes it from labels (ForCausalLMLoss)
            with hf.device_answers():
                return self.inner(input_ids=tokens, labels=targets).loss
        logits = self(tokens)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def build_user_model(config: ModelConfig, setup: Setup) -> UserLM:
    """The model of a source other than 'builtin', on the current default device (torch.device(...) context), in
    the setup's dtype, in training mode."""
    kind = source_kind(config.source)
    if kind == "hf":
        inner, is_hf = hf.build(config, setup), True
    else:
        if setup.checkpointing != "none":
            raise ValueError(f"model {config.source}: checkpointing {setup.checkpointing} is applied to the built-in "
                             "blocks and to Hugging Face models; checkpoint inside your own model instead")
        factory = load_callable(config.source)
        if not callable(factory):
            raise ValueError(f"model {config.source}: {type(factory).__name__} is not callable")
        try:
            inner = factory(**factory_arguments(factory, config, config.source))
        except ValueError:
            raise
        except Exception as error:
            raise ValueError(f"model {config.source}: the factory raised {type(error).__name__}: {error}") from None
        is_hf = False
        if not isinstance(inner, nn.Module):
            raise ValueError(f"model {config.source}: the factory returned {type(inner).__name__}, not an "
                             "nn.Module")
    model = UserLM(inner, config, is_hf).to(getattr(torch, setup.dtype))
    return model.train()


def optimizer_class(reference: str) -> type:
    """The torch.optim.Optimizer subclass of 'FILE.py:NAME' or 'package.module:NAME'."""
    cls = load_callable(reference, what="optimizer class")
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ValueError(f"optimizer class {reference}: {getattr(cls, '__name__', cls)!s} is not a subclass of "
                         "torch.optim.Optimizer")
    return cls


@contextlib.contextmanager
def explained_failures(config: ModelConfig):
    """Around a step of a user's or Hugging Face model: an exception its code raises (an op meta tensors cannot run,
    a data-dependent branch, a wrong shape) becomes one ValueError naming the source, the error and the line of the
    model's code it came from, with --device cpu at a small size suggested. ValueErrors (the tool's own one-line
    errors) and running out of GPU memory (max-batch probes count on it) pass unchanged; the built-in model is
    left alone."""
    if config.source == BUILTIN:
        yield
        return
    try:
        yield
    except (ValueError, torch.OutOfMemoryError):
        raise
    except Exception as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ValueError(f"model {config.source}: {type(error).__name__}: {message}{model_line(error)}; if meta "
                         "tensors cannot run it, measure it with --device cpu at a small size") from None


def model_line(error: BaseException) -> str:
    """' (at FILE:LINE: code)' for the innermost frame of the traceback outside torch and this project: the line of
    the model's own code (or transformers') that raised; '' where there is none."""
    ours = (Path(torch.__file__).parent, Path(__file__).parent.parent)
    frames = [frame for frame in traceback.extract_tb(error.__traceback__)
              if not any(Path(frame.filename).resolve().is_relative_to(root.resolve()) for root in ours)]
    if not frames:
        return ""
    frame = frames[-1]
    return f" (at {frame.filename}:{frame.lineno}: {frame.line})"
