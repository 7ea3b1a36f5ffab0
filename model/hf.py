"""Hugging Face transformers models built from a config object: the standard sizes mapped onto GPT2Config and
LlamaConfig, random weights, never the hub (the optional extra: pip install -e ".[hf]").

hf:gpt2 is GPT2LMHeadModel, hf:llama LlamaForCausalLM, hf:PATH.json the model of a config.json's model_type (gpt2
or llama; its sizes are read from the file, `sizes_of`). The setup's attention option picks the implementation:
'explicit' is attn_implementation="eager", the sdpa options "sdpa" (the kernel is the option's,
model.cuda_kernels). Full checkpointing is the model's gradient_checkpointing_enable (non-reentrant).
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

# Config keys of each supported model type, by ModelConfig field.
KEYS = {
    "gpt2": {"vocab_size": "vocab_size", "context_length": "n_positions", "num_layers": "n_layer",
             "d_model": "n_embd", "num_heads": "n_head", "d_ff": "n_inner"},
    "llama": {"vocab_size": "vocab_size", "context_length": "max_position_embeddings",
              "num_layers": "num_hidden_layers", "d_model": "hidden_size", "num_heads": "num_attention_heads",
              "d_ff": "intermediate_size", "kv_heads": "num_key_value_heads"},
}
GPT2_DROPOUTS = ("resid_pdrop", "embd_pdrop", "attn_pdrop")


def read_config(source: str) -> dict[str, Any]:
    """The JSON of hf:PATH.json, checked to be a supported model type."""
    path = Path(source.removeprefix("hf:")).expanduser()
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise ValueError(f"model {source}: cannot read {path}: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"model {source}: {path} is not JSON ({error})") from None
    if not isinstance(document, dict) or document.get("model_type") not in KEYS:
        found = document.get("model_type") if isinstance(document, dict) else None
        raise ValueError(f"model {source}: model_type must be {' or '.join(KEYS)}, got {found!r}")
    return document


def sizes_of(source: str) -> dict[str, Any]:
    """The ModelConfig fields of hf:PATH.json: its sizes, arch (the model type) and dropout (gpt2's, which must be
    one probability for the residual, embedding and attention dropouts)."""
    document = read_config(source)
    arch = document["model_type"]
    fields: dict[str, Any] = {"arch": arch}
    for field, key in KEYS[arch].items():
        if document.get(key) is not None:
            fields[field] = document[key]
    if arch == "gpt2":
        dropouts = {document.get(key, 0.1) for key in GPT2_DROPOUTS}
        if len(dropouts) > 1:
            raise ValueError(f"model {source}: {', '.join(GPT2_DROPOUTS)} differ ({sorted(dropouts)}); the step "
                             "takes one dropout probability")
        fields["dropout"] = dropouts.pop()
    missing = [field for field in ("vocab_size", "context_length", "num_layers", "d_model", "num_heads")
               if field not in fields]
    if missing:
        raise ValueError(f"model {source}: the config has no {', '.join(KEYS[arch][name] for name in missing)}")
    return fields


def transformers_module():
    try:
        import transformers
    except ImportError:
        raise ValueError('Hugging Face models need transformers: pip install -e ".[hf]"') from None
    return transformers


def hf_config(config, attention: str):
    """The transformers config object of a ModelConfig (model.config) with source hf:*."""
    transformers = transformers_module()
    implementation = "eager" if attention == "explicit" else "sdpa"
    base = dict(read_config(config.source)) if config.source.endswith(".json") else {}  # a config file's others
    base.pop("model_type", None)
    sizes = {key: getattr(config, field) for field, key in KEYS[config.arch].items()}  # the config's own names
    if config.arch == "gpt2":
        return transformers.GPT2Config(**{**base, **sizes, **dict.fromkeys(GPT2_DROPOUTS, config.dropout)},
                                       attn_implementation=implementation)
    return transformers.LlamaConfig(**{**base, **sizes}, attn_implementation=implementation)


def build(config, setup):
    """The Hugging Face model of `config` for `setup` (attention, checkpointing), on the current default device."""
    transformers = transformers_module()
    if setup.checkpointing == "selective":
        raise ValueError(f"model {config.source}: checkpointing selective is the built-in blocks' policy; Hugging "
                         "Face models checkpoint whole layers (checkpointing full)")
    model_class = transformers.GPT2LMHeadModel if config.arch == "gpt2" else transformers.LlamaForCausalLM
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # its notes on the configs made here (token ids, loss type)
    try:
        model = model_class(hf_config(config, setup.attention))
    finally:
        transformers.logging.set_verbosity(verbosity)
    model.loss_type = "ForCausalLM"  # the loss GPT2LMHeadModel falls back to, named so that it says nothing
    model.config.use_cache = False  # a training step: no key/value cache
    if setup.checkpointing == "full":  # recomputation re-enters the autocast emulation where one is active
        from model.autocast import with_autocast_emulation

        kwargs = {"use_reentrant": False, "context_fn": with_autocast_emulation()}
        if hasattr(model, "activation_checkpointing_enable"):  # its name from transformers 5.x on
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    return model


@contextlib.contextmanager
def device_answers():
    """transformers' Python-bool checks of tensor data, answered on meta as a real device answers them for the
    step's batch: masking_utils.find_packed_sequence_indices asks whether the position ids pack several sequences
    into a row, which meta tensors cannot say; the step's rows are one sequence each (positions 0..T-1), so the
    answer is None (no packing), as on CUDA. Real tensors are asked as they are."""
    from transformers import masking_utils

    original = getattr(masking_utils, "find_packed_sequence_indices", None)
    if original is None:
        yield
        return

    def answered(position_ids):
        return None if position_ids.device.type == "meta" else original(position_ids)

    masking_utils.find_packed_sequence_indices = answered
    try:
        yield
    finally:
        masking_utils.find_packed_sequence_indices = original
