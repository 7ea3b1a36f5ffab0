"""The exact model over arrays of configs (evaluate_arrays) equals it config by config (predict), every figure, to the
byte; and the compiled step (analytic.exact.memory.compiled_walk) loses nothing by keeping only the moments that can
hold a window's peak."""
import numpy as np
import pytest

from analytic import exact
from analytic.exact import memory
from analytic.exact.source import installed
from analytic.figures import flatten
from analytic.sizes import optimizer_key, sizes_from_arrays
from model import StepSpec

SETUPS = [  # (options, optimizer): the setups the vectorised path is compared on
    (dict(), "foreach"),
    (dict(arch="gpt2", positional="learned", dropout=0.1, checkpointing="full", micro_batches=2), "forloop"),
    (dict(arch="llama", positional="rope", attention="sdpa-efficient", autocast="bfloat16",
          checkpointing="selective", zero_grad="zeros"), "fused"),
    (dict(positional="rope", dtype="bfloat16", attention="sdpa-flash", micro_batches=3, zero_grad="zeros"),
     "foreach"),
    (dict(positional="none", attention="sdpa-math", checkpointing="full"), "forloop"),
    (dict(arch="llama", positional="rope", dtype="bfloat16", checkpointing="full", micro_batches=2), "foreach"),
]


def random_sizes(rng, count: int, arch: str, vocab=(2, 60_000)) -> dict[str, np.ndarray]:
    """Sizes of `count` configs: B and H from 1 (every layout), head sizes a multiple of 8 (every attention
    option), L from 1 (segments run L − 1 times from L = 2 on), kv_heads a divisor of the heads for llama."""
    heads = rng.integers(1, 9, count)
    sizes = dict(vocab_size=rng.integers(*vocab, count), context_length=rng.integers(2, 700, count),
                 num_layers=rng.integers(1, 7, count), d_model=heads * 8 * rng.integers(1, 9, count),
                 num_heads=heads, d_ff=rng.integers(1, 3000, count), batch_size=rng.integers(1, 6, count))
    if arch == "llama":
        sizes["kv_heads"] = np.array([rng.choice([g for g in range(1, h + 1) if h % g == 0]) for h in heads])
    return sizes


def differences(options: dict, optimizer: str, sizes: dict[str, np.ndarray], checked) -> dict:
    """{(config index, figure): (vectorised, per config)} where evaluate_arrays and predict differ."""
    vector = flatten(exact.evaluate_arrays(optimizer=optimizer, **options, **sizes))
    micro_batches = options.get("micro_batches", 1)
    found = {}
    for i in checked:
        spec = StepSpec.of(batch_size=micro_batches * int(sizes["batch_size"][i]), optimizer=optimizer, **options,
                           **{name: int(values[i]) for name, values in sizes.items() if name != "batch_size"})
        one = flatten(exact.predict(spec))
        found.update({(i, key): (values[i], one.get(key)) for key, values in vector.items()
                      if one.get(key) != values[i]})
    return found


@pytest.mark.parametrize("options, optimizer", SETUPS)
def test_vectorised_equals_per_config_predictions(options, optimizer):
    """160 configs a call: in the layouts with 64 or more of them, the products run in float64
    (test_vectorised_products_in_float_where_exact)."""
    sizes = random_sizes(np.random.default_rng(len(str(options))), 160, options.get("arch", "reference"))
    assert differences(options, optimizer, sizes, range(160)) == {}


@pytest.mark.slow
@pytest.mark.parametrize("options, optimizer", SETUPS)
def test_vectorised_equals_per_config_predictions_on_thousands(options, optimizer):
    sizes = random_sizes(np.random.default_rng(7 + len(str(options))), 600, options.get("arch", "reference"))
    assert differences(options, optimizer, sizes, range(600)) == {}


@pytest.mark.parametrize("vocab, product", [((2, 60_000), np.float64), ((10**12, 2 * 10**12), np.int64)])
def test_vectorised_products_in_float_where_exact(vocab, product):
    """Over 64 configs or more the symbols are multiplied in float64 where every partial sum stays below 2**52,
    else (a vocabulary of 10**12) in int64: exact either way."""
    sizes = random_sizes(np.random.default_rng(3), 80, "reference", vocab=vocab)
    sizes.update(batch_size=2 + 0 * sizes["batch_size"], num_heads=2 + 0 * sizes["num_heads"])  # one layout
    sizes["d_model"] = 16 * (sizes["d_model"] // 8 // sizes["num_heads"] + 1)
    arrays = sizes_from_arrays(**sizes)
    walk = memory.compiled_walk(installed(), arrays.layout_class("learned", (False,) * 4),
                                optimizer_key("reference", "learned", False, "foreach"), 1, "none", False)
    assert memory._values(arrays, walk.figures, walk.candidates).dtype == product
    assert differences({}, "foreach", sizes, range(0, 80, 4)) == {}


@pytest.mark.parametrize("options", [dict(), dict(checkpointing="full", micro_batches=2, zero_grad="zeros"),
                                     dict(arch="llama", positional="rope", checkpointing="selective")])
@pytest.mark.parametrize("warmup", [False, True])
def test_compiled_walk_keeps_every_window_figure(options, warmup):
    """The figures of every window from the moments kept (Walk.candidates, far fewer) equal those from every
    moment, in every layout, at L from 1."""
    arch = options.get("arch", "reference")
    sizes = sizes_from_arrays(**random_sizes(np.random.default_rng(5), 300, arch), **options)
    programs = installed()
    for layout, chosen in sizes.layout_groups:
        part = sizes.select(chosen)
        key = part.layout_class(options.get("positional", "learned"), layout)
        setup = (programs, key, optimizer_key(arch, key.positional, layout[2], "foreach"), part.micro_batches,
                 part.zero_grad, warmup)
        walk, every = memory.compiled_walk(*setup), memory.compile_walk(*memory.step_windows(*setup),
                                                                        every_moment=True)
        assert 3 * len(walk.least_layers) < len(every.least_layers)
        for (name, index, kept), (_, _, full) in zip(memory.walk_windows(walk, part),
                                                      memory.walk_windows(every, part), strict=True):
            kept, full = flatten(kept), flatten(full)
            assert kept.keys() == full.keys()
            assert all(np.array_equal(kept[figure], full[figure]) for figure in kept), (name, index)
