"""Hypothesis strategies shared by the tests."""
from hypothesis import strategies as st

from model import ModelConfig


@st.composite
def model_configs(draw, max_heads=6, max_head_pairs=6, max_vocab=300, min_context=1, max_context=40,
                  max_layers=3, max_d_ff=100, dtypes=("float32",), checkpointings=("none",), micro_batches=(1,),
                  zero_grads=("none",), attentions=("explicit",), autocasts=("none",)):
    """Configs with odd and even sizes: d_model = heads · 2·pairs (even head size, so RoPE is allowed; a multiple
    of 8 for the fused SDPA kernels, whose flash runs 16-bit dtypes only)."""
    heads = draw(st.integers(1, max_heads))
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
    return ModelConfig(vocab_size=draw(st.integers(2, max_vocab)),
                       context_length=draw(st.integers(min_context, max_context)),
                       num_layers=draw(st.integers(1, max_layers)), d_model=heads * head_dim, num_heads=heads,
                       d_ff=draw(st.one_of(st.none(), st.integers(1, max_d_ff))),
                       positional=draw(st.sampled_from(["learned", "rope", "none"])),
                       dtype=draw(st.sampled_from(dtypes)), checkpointing=draw(st.sampled_from(checkpointings)),
                       micro_batches=draw(st.sampled_from(micro_batches)), attention=attention, autocast=autocast,
                       zero_grad=draw(st.sampled_from(zero_grads)))
