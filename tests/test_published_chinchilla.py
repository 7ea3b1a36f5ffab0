"""Hoffmann et al. 2022 (Chinchilla, arXiv 2203.15556) Appendix F and Table A4, as analytic.published.chinchilla
encodes them."""
import pytest

from analytic import exact
from analytic.formula_sets import describes
from analytic.params import parameter_count
from analytic.published import chinchilla
from model import PRESETS
from model.spec import StepSpec

# Table A4 | FLOP comparison: num_layers, d_model, ffw_size, num_heads, k/q size, FLOP Ratio (Ours/6ND).
TABLE_A4 = [(10, 640, 2560, 10, 64, 1.03), (20, 1024, 4096, 16, 64, 1.10), (24, 1280, 5120, 10, 128, 1.08),
            (26, 1792, 7168, 14, 128, 1.04), (28, 2048, 8192, 16, 128, 1.03), (40, 3584, 14336, 28, 128, 0.99)]
SEQ_LEN = 2048  # as karpathy/nanoGPT scaling_laws.ipynb takes it (the ratio depends on it through the T² terms)
VOCAB_SIZE = 32_000  # Table A8 (model card): "a vocabulary of size 32,000"


def chinchilla_params(vocab_size, d_model, num_layers, ffw_size):
    """N as karpathy/nanoGPT scaling_laws.ipynb (commit 3adf61e1) reconstructs the Chinchilla models' counts:
    QKV and projection weights and biases, relative-position parameters d² + 2d, the two dense matrices with biases,
    two LayerNorms per layer, a final LayerNorm and the d·V embedding; not printed in the paper."""
    attention = 3 * d_model ** 2 + 3 * d_model
    relative_pos = d_model ** 2 + 2 * d_model
    attproj = d_model ** 2 + d_model
    ffw = d_model * ffw_size + ffw_size
    ffwproj = ffw_size * d_model + d_model
    layernorms = 2 * 2 * d_model
    return num_layers * (attention + relative_pos + attproj + ffw + ffwproj + layernorms) + 2 * d_model \
        + d_model * vocab_size


@pytest.mark.parametrize("num_layers, d_model, ffw_size, num_heads, key_size, printed", TABLE_A4)
def test_chinchilla_table_a4(num_layers, d_model, ffw_size, num_heads, key_size, printed):
    """Table A4's ratio of "the FLOPs that we compute per sequence to that using the 6ND approximation", to its two
    printed decimals, comes out of Appendix F's terms without the embeddings and final logits (nanoGPT's notebook:
    "they do not count embeddings and logits to repro table 4"); with them (the text as published) it does not."""
    n = chinchilla_params(VOCAB_SIZE, d_model, num_layers, ffw_size)
    sizes = (SEQ_LEN, VOCAB_SIZE, d_model, num_heads, key_size, ffw_size, num_layers)
    ratio = chinchilla.training_flops(*sizes, embeddings_and_logits=False) / (6 * n * SEQ_LEN)
    assert round(ratio, 2) == printed
    assert chinchilla.training_flops(*sizes) / (6 * n * SEQ_LEN) > printed + 0.02


def test_chinchilla_forward_is_appendix_f():
    """The published items summed: embeddings + num_layers × (QKV + logits + softmax + reductions + final linear +
    dense block) + logits, for B sequences; backward twice forward; linear in the batch."""
    config = PRESETS["gpt2-small"]
    T, V, D, H, F, L = (config.context_length, config.vocab_size, config.d_model, config.num_heads, config.d_ff,
                        config.num_layers)
    k = config.head_dim
    layer = (2 * 3 * T * D * (k * H) + 2 * T * T * (k * H) + 3 * H * T * T + 2 * T * T * (k * H)
             + 2 * T * (k * H) * D + 2 * T * (D * F + D * F))
    forward = 2 * T * V * D + L * layer + 2 * T * D * V
    one, two = (chinchilla.predict(StepSpec(config, batch_size=b))["flops_matmul"] for b in (1, 2))
    assert one == {"forward": forward, "backward": 2 * forward}
    assert two == {key: 2 * value for key, value in one.items()}
    # "we also count embeddings matrices"
    assert chinchilla.predict(StepSpec(config))["params"] == parameter_count(config)


def test_chinchilla_counts_the_embedding_and_the_softmax_beyond_our_matmuls():
    """Against FlopCounterMode's count (analytic.exact) the published forward has the embeddings' 2·T·V·D (a lookup
    for us) and the softmax's 3·H·T² per layer more; its QKᵀ and P·V are full, as ours."""
    for name in ("gpt2-small", "hf-gpt2-xl"):
        config = PRESETS[name]
        T, V, D, H, L = config.context_length, config.vocab_size, config.d_model, config.num_heads, config.num_layers
        measured = exact.predict(StepSpec(config))["flops_matmul"]["forward"]
        predicted = chinchilla.predict(StepSpec(config))["flops_matmul"]["forward"]
        assert predicted - measured == 2 * T * V * D + L * 3 * H * T * T


def test_chinchilla_is_graded_on_its_setup_only():
    assert describes(chinchilla, StepSpec(PRESETS["gpt2-small"]))
    assert describes(chinchilla, StepSpec(PRESETS["hf-gpt2"]).replace(dtype="bfloat16", attention="sdpa-efficient"))
    assert not describes(chinchilla, StepSpec(PRESETS["hf-gpt2"]).replace(checkpointing="selective"))
    assert not describes(chinchilla, StepSpec(PRESETS["tinyllama-1.1b"]))  # SwiGLU and grouped K/V are not in it
