"""Hypothesis strategies shared by the tests."""
import torch
from hypothesis import assume, strategies as st

from analytic.exact.versions import outside_domain
from model.config import ARCH_POSITIONAL
from model.spec import StepSpec


def assume_exact_domain(spec: StepSpec) -> None:
    """Leave out a drawn spec the exact model does not model on the installed torch (RoPE with a head size of 2
    before torch 2.11, analytic.exact.versions.outside_domain): its tests compare it where it claims to hold."""
    assume(outside_domain(spec.model, torch.__version__) is None)


@st.composite
def step_specs(draw, max_heads=6, max_head_pairs=6, max_vocab=300, min_context=1, max_context=40, max_layers=3,
               max_d_ff=100, dtypes=("float32",), checkpointings=("none",), micro_batches=(1,), zero_grads=("none",),
               attentions=("explicit",), autocasts=("none",), archs=("reference",)):
    """Step specs (at batch 1) with odd and even sizes: d_model = heads · 2·pairs (even head size, so RoPE is
    allowed; a multiple of 8 for the fused SDPA kernels, whose flash runs 16-bit dtypes only); gpt2 with dropout 0.1
    or none (none with sdpa-math, whose dropout is not simulated), llama with any divisor of the heads as
    kv_heads."""
    heads = draw(st.integers(1, max_heads))
    arch = draw(st.sampled_from(archs))
    attention = draw(st.sampled_from(attentions))
    if attention in ("sdpa-flash", "sdpa-efficient"):
        head_dim = draw(st.integers(1, max(1, max_head_pairs // 4))) * 8
    else:
        head_dim = draw(st.integers(1, max_head_pairs)) * 2
    autocast = draw(st.sampled_from(autocasts))
    if autocast != "none":
        dtypes = ("float32",)  # mixed precision over float32 parameters
    elif attention == "sdpa-flash":
        dtypes = tuple(dtype for dtype in dtypes if dtype != "float32") or ("bfloat16",)
    dropout = draw(st.sampled_from((0.1, 0.0))) if arch == "gpt2" and attention != "sdpa-math" else 0.0
    kv_heads = draw(st.sampled_from([g for g in range(1, heads + 1) if heads % g == 0])) if arch == "llama" \
        else heads
    return StepSpec.of(vocab_size=draw(st.integers(2, max_vocab)), arch=arch, dropout=dropout, kv_heads=kv_heads,
                       context_length=draw(st.integers(min_context, max_context)),
                       num_layers=draw(st.integers(1, max_layers)), d_model=heads * head_dim, num_heads=heads,
                       d_ff=draw(st.one_of(st.none(), st.integers(1, max_d_ff))),
                       positional=draw(st.sampled_from(ARCH_POSITIONAL[arch])),
                       dtype=draw(st.sampled_from(dtypes)), checkpointing=draw(st.sampled_from(checkpointings)),
                       micro_batches=draw(st.sampled_from(micro_batches)), attention=attention, autocast=autocast,
                       zero_grad=draw(st.sampled_from(zero_grads)))
