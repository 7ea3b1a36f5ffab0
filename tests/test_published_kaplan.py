"""Kaplan et al. 2020 (arXiv 2001.08361) §2.1 and Table 1, as analytic.published.kaplan encodes them."""
import pytest

from analytic import exact
from analytic.formula_sets import describes
from analytic.published import kaplan
from model import PRESETS
from model.spec import StepSpec


def test_kaplan_parameter_count_of_the_largest_model():
    """Equation (2.1), N = 2·d_model·n_layer·(2·d_attn + d_ff) = 12·n_layer·d_model² in the standard shape; the
    (n_layer, d_model) = (48, 1600) model of [RWC+19] (Figure 5) is the top of "ranging in size from 768 to 1.5
    billion non-embedding parameters" (§3). GPT-2 XL has that shape."""
    xl = PRESETS["hf-gpt2-xl"]
    assert kaplan.non_embedding_parameters(48, 1600, 1600, 6400) == 12 * 48 * 1600 ** 2 == 1_474_560_000
    assert kaplan.parameters(xl) == kaplan.predict(StepSpec(xl))["params"] == 1_474_560_000
    assert round(kaplan.parameters(xl) / 1e9, 1) == 1.5


def test_kaplan_context_term_is_small_above_n_ctx_over_12():
    """"For contexts and models with d_model > n_ctx/12, the context-dependent computational cost per token is a
    relatively small fraction of the total compute": 2·n_layer·n_ctx·d_model over 2N = n_ctx/(12·d_model) in the
    standard shape, one at d_model = n_ctx/12."""
    n_layer, n_ctx = 12, 1024
    for d_model in (64, 768, 1600):
        n = kaplan.non_embedding_parameters(n_layer, d_model, d_model, 4 * d_model)
        context = kaplan.forward_flops_per_token(n, n_layer, n_ctx, d_model) - 2 * n
        assert context / (2 * n) == pytest.approx(n_ctx / (12 * d_model))
    n_ctx, d_model = 1536, 128  # d_model = n_ctx/12: the context term equals 2N
    n = kaplan.non_embedding_parameters(n_layer, d_model, d_model, 4 * d_model)
    assert kaplan.forward_flops_per_token(n, n_layer, n_ctx, d_model) == 4 * n


def test_kaplan_step_algebra():
    """C_forward = 2N + 2·n_layer·n_ctx·d_attn per token, B·T tokens a step, backward twice forward (6N + context
    terms per training token); linear in the batch."""
    config = PRESETS["gpt2-small"]
    L, T, D = config.num_layers, config.context_length, config.d_model
    n = kaplan.parameters(config)
    one, two = (kaplan.predict(StepSpec(config, batch_size=b))["flops_matmul"] for b in (1, 2))
    assert one["forward"] == T * (2 * n + 2 * L * T * D)
    assert one["backward"] == 2 * one["forward"]
    assert two == {key: 2 * value for key, value in one.items()}
    assert one["forward"] + one["backward"] == T * (kaplan.training_flops_per_token(n) + 6 * L * T * D)


def test_kaplan_misses_the_de_embedding_and_half_the_attention():
    """Against FlopCounterMode's count (analytic.exact) on the reference block the forward lacks exactly Table 1's
    De-embed row 2·d_model·n_vocab per token and half of QKᵀ and P·V (its Mask row is 2·n_layer·n_ctx·d_attn)."""
    for name in ("gpt2-small", "hf-gpt2-xl"):
        config = PRESETS[name]
        L, T, D, V = config.num_layers, config.context_length, config.d_model, config.vocab_size
        measured = exact.predict(StepSpec(config))["flops_matmul"]["forward"]
        missing = T * kaplan.de_embed_flops_per_token(D, V) + 2 * L * T * T * D
        assert kaplan.predict(StepSpec(config))["flops_matmul"]["forward"] + missing == measured


def test_kaplan_is_graded_on_its_setup_only():
    assert describes(kaplan, StepSpec(PRESETS["gpt2-small"]))
    assert describes(kaplan, StepSpec(PRESETS["hf-gpt2"]).replace(autocast="bfloat16", attention="sdpa-flash"))
    assert not describes(kaplan, StepSpec(PRESETS["gpt2-small"]).replace(checkpointing="full"))
    assert not describes(kaplan, StepSpec(PRESETS["llama2-7b"]))  # SwiGLU's third matrix is not in N
