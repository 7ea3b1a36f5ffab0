"""Tensor and sequence parallelism on FSDP2's 2-D mesh ("dp", "tp"), torchtitan's plan (model.tensor_parallel): what
a rank holds and saves at several mesh shapes, to the byte; clear errors. One rank simulated on the fake process
group against real gloo ranks, byte for byte: tests/test_sharded.py (its gloo configs include 1 x 2 and 2 x 2
meshes)."""
import argparse

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from analytic.formula_sets import describing
from analytic.params import parameter_count
from analytic.sharding import fsdp2_model_states
from model import preset
from model.spec import StepSpec
from profiler.cli import main
from profiler.commands import options
from profiler.measuring.measure import measure
from profiler.measuring.sharded import unsupported
from tests.test_sharded import phase_figures

TINY = StepSpec(preset("tiny"))  # V 256, T 32, L 2, D 64, H 4, F 256: every size divides 2, 4 and 8
needs_fsdp2 = pytest.mark.skipif(unsupported() is not None, reason=str(unsupported()))


def whole_parameters(config: StepSpec) -> int:
    """The parameters tensor parallelism leaves whole on every "tp" rank: the norms, and GPT-2's biases of the
    row-wise layers (out_proj, w2); the rest is split t ways."""
    model = config.model
    norms = (2 * model.num_layers + 1) * model.d_model * (2 if model.arch == "gpt2" else 1)
    return norms + (2 * model.num_layers * model.d_model if model.arch == "gpt2" else 0)


@needs_fsdp2
@pytest.mark.parametrize("arch", ["reference", "gpt2", "llama"])
@pytest.mark.parametrize("tensor_parallel, world_size", [(2, 2), (2, 4), (4, 8), (8, 8)])
def test_a_rank_holds_its_tensor_parallel_shard_sharded_over_dp(arch, tensor_parallel, world_size):
    """Every size of tiny divides t · dp here: a rank's parameters are the split ones over t and the whole ones,
    all over dp = world_size / t (FSDP2 on "dp"), its AdamW state twice that; the step's gradients as many."""
    config = TINY.replace(arch=arch, dropout=0.0, num_heads=8, shard="fsdp2", world_size=world_size,
                          tensor_parallel=tensor_parallel, batch_size=2)
    whole = whole_parameters(config)
    split = parameter_count(config.model) - whole
    measured = measure(config, "meta", count_flops=False).measured
    at_step = measured["phases"]["optimizer"]["categories_at_peak"]
    dp = world_size // tensor_parallel
    rank_parameters = 4 * (split // tensor_parallel + whole) // dp
    assert (at_step["parameters"], at_step["gradients"], at_step["optimizer_state"]) == \
        (rank_parameters, rank_parameters, 2 * rank_parameters)
    assert measured["params"] == parameter_count(config.model)  # DTensors count their global elements


@needs_fsdp2
@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch=st.sampled_from(["reference", "gpt2", "llama"]), t=st.integers(2, 4), dp=st.integers(1, 5),
       heads_per_rank=st.integers(1, 2), head_size=st.integers(1, 3), ffn_per_rank=st.integers(1, 9),
       vocab=st.integers(4, 90), positions_per_rank=st.integers(1, 6), layers=st.integers(1, 2),
       sequence_parallel=st.booleans(), autocast=st.sampled_from(["none", "bfloat16"]), data=st.data())
def test_closed_form_model_states_equal_the_simulated_rank(arch, t, dp, heads_per_rank, head_size, ffn_per_rank,
                                                          vocab, positions_per_rank, layers, sequence_parallel,
                                                          autocast, data):
    """analytic.sharding's closed form at tensor parallelism against the simulated rank, at random sizes (the
    vocabulary and, without sequence parallelism, the positions uneven over t and dp), mesh shapes and ranks."""
    heads = t * heads_per_rank
    context = t * positions_per_rank if sequence_parallel else data.draw(st.integers(t, 20))
    chunk = -(-vocab // t)  # torch.chunk's rows a rank: the last rank must keep some (StepSpec refuses it else)
    assume(chunk * (t - 1) < vocab and (sequence_parallel or -(-context // t) * (t - 1) < context))
    config = StepSpec.of(vocab_size=vocab, context_length=context, num_layers=layers,
                         d_model=heads * 2 * head_size, num_heads=heads, d_ff=t * ffn_per_rank, arch=arch,
                         dropout=0.0, positional="rope" if arch == "llama" else "learned", shard="fsdp2",
                         world_size=t * dp, tensor_parallel=t, sequence_parallel=sequence_parallel,
                         autocast=autocast, batch_size=2)
    rank = data.draw(st.integers(0, t * dp - 1))
    at_step = measure(config, "meta", rank=rank, count_flops=False).measured["phases"]["optimizer"][
        "categories_at_peak"]
    assert {name: at_step[name] for name in ("parameters", "gradients", "optimizer_state")} == \
        fsdp2_model_states(config, rank)


# The exact set's tensor-parallel classes (shipped, analytic.exact.sharded.SHIPPED_SETUPS): fp32; sequence
# parallelism with FSDP2's mixed precision; llama with RoPE, grouped-query attention, sequence parallelism, mixed
# precision and selective checkpointing; GPT-2's block over two micro-batches with full checkpointing.
TP_CLASSES = ("tp-fp32", "tp-sp-amp", "tp-sp-llama-gqa-amp-selective", "tp-gpt2-mb-full")


@needs_fsdp2
@pytest.mark.slow
@pytest.mark.parametrize("name", TP_CLASSES)
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(t=st.integers(2, 4), dp=st.integers(1, 6), heads_per_rank=st.integers(2, 3), head_pairs=st.integers(1, 3),
       vocab=st.integers(16, 300), positions_per_rank=st.integers(1, 8), layers=st.integers(1, 4),
       ffn_per_rank=st.integers(1, 20), batch=st.integers(2, 4))
def test_exact_equals_the_simulated_tensor_parallel_rank(name, t, dp, heads_per_rank, head_pairs, vocab,
                                                         positions_per_rank, layers, ffn_per_rank, batch):
    """The exact set's rank (analytic.exact.sharded) at tensor parallelism against the simulated rank 0, every phase
    (and micro-batch) to the byte, its matmul and AdamW FLOPs, at sizes, layer counts and meshes the derivation never
    traced (it traces 2 x 3 and 6 x 4 meshes, 1 to 5 layers), the vocabulary and the positions uneven over t."""
    from analytic.exact.sharded import SHIPPED_SETUPS
    from analytic.formula_sets import exact_set
    options = dict(SHIPPED_SETUPS[name], tensor_parallel=t)
    kv_heads = t * heads_per_rank
    heads = kv_heads * (2 if "kv_heads" in options else 1)  # grouped: two query heads per key/value head
    context = t * positions_per_rank if options.get("sequence_parallel") else t * positions_per_rank + t - 1
    assume(-(-vocab // t) * (t - 1) < vocab and -(-context // t) * (t - 1) < context)  # no rank without rows
    spec = StepSpec.of(**{**options, "num_heads": heads, "kv_heads": kv_heads}, vocab_size=vocab,
                       context_length=context, num_layers=layers, d_model=heads * 2 * head_pairs,
                       d_ff=t * ffn_per_rank, world_size=t * dp)
    spec = spec.replace(batch_size=spec.setup.micro_batches * batch)
    measured = measure(spec, "meta").measured
    predicted = exact_set().predict(spec)
    assert phase_figures(predicted) == phase_figures(measured)
    assert predicted.get("micro_batches") == measured.get("micro_batches")  # every micro-batch's figures
    assert predicted["flops_matmul"] == measured["flops_matmul"]
    assert predicted["flops"] == {"optimizer": measured["flops"]["optimizer"]}  # elementwise FLOPs not at t > 1
    assert (predicted["peak_bytes"], predicted["peak_phase"]) == (measured["peak_bytes"], measured["peak_phase"])


def test_no_two_symbols_coincide_at_the_traced_meshes_in_any_tensor_parallel_class():
    """Every tensor-parallel class (arch, attention, dtypes, a rank's head layout, B = 1 or not, one "dp" rank or
    several, with and without sequence parallelism): no two symbols agree at both traced size sets (2 x 3 and 6 x 4
    meshes) but not at a check set, which would let a derivation name a tensor by the wrong symbol."""
    import itertools

    from analytic.exact.derivation.derive_sharded import coincident_symbols
    from analytic.sizes import ShardedClass

    heads = {"general": (2, 2), "one head": (1, 1), "grouped": (4, 2), "multi-query": (2, 1)}
    keys = set()
    for (arch, positional), attention, dtypes, layout, batch, ranks, sequence in itertools.product(
            [("reference", "learned"), ("gpt2", "learned"), ("llama", "rope")], ["explicit", "sdpa-efficient",
                                                                                  "sdpa-flash"],
            [("float32", "none"), ("float32", "bfloat16"), ("bfloat16", "none")], heads, (1, 2), (2, 4),
            (False, True)):
        if (layout in ("grouped", "multi-query") and arch != "llama") or (attention, dtypes[0]) == ("sdpa-flash",
                                                                                                      "float32"):
            continue
        per_rank, kv_per_rank = heads[layout]
        spec = StepSpec.of(vocab_size=16, context_length=4, num_layers=1, d_model=16 * per_rank, d_ff=8,
                           num_heads=2 * per_rank, kv_heads=2 * kv_per_rank, arch=arch, positional=positional,
                           attention=attention, dtype=dtypes[0], autocast=dtypes[1], batch_size=batch,
                           shard="fsdp2", world_size=ranks, tensor_parallel=2, sequence_parallel=sequence)
        keys.add(ShardedClass.of(spec))
    assert len(keys) == 448
    assert {key.what(): coincident_symbols(key) for key in keys if coincident_symbols(key)} == {}


@needs_fsdp2
def test_rank_0_holds_the_most():
    """Every rank of a 2 x 3 mesh simulated: with 250 vocabulary rows and 30 positions split unevenly over t = 3
    (84, 84, 82 rows) and again over dp = 2, no rank's peak passes rank 0's, the rank the exact set predicts (its
    peak equal to rank 0's)."""
    from analytic.formula_sets import exact_set

    spec = TINY.replace(shard="fsdp2", world_size=6, tensor_parallel=3, num_heads=6, d_model=48, d_ff=96,
                        vocab_size=250, context_length=30, batch_size=2)
    peaks = [measure(spec, "meta", rank=rank, count_flops=False).measured["peak_bytes"] for rank in range(6)]
    assert max(peaks) == peaks[0] > min(peaks)
    assert exact_set().predict(spec)["peak_bytes"] == peaks[0]


@needs_fsdp2
@pytest.mark.parametrize("tensor_parallel", [2, 4])
def test_what_tensor_and_sequence_parallelism_split_of_the_saved_activations(tensor_parallel):
    """Against one rank of FSDP2 without tensor parallelism, saved activations per component, to the byte: the
    attention core, out_proj's and w2's inputs, the FFN's hidden activations and the loss's log-softmax are split t
    ways (the heads, d_ff and the vocabulary are); the norms keep whole inputs, and split them t ways with sequence
    parallelism (on the sequence); q_proj's and w1's inputs, all-gathered from the sequence-split stream with
    sequence parallelism, stay whole either way (torch saves the gathered input; Megatron-LM gathers it again in
    backward)."""
    base = TINY.replace(shard="fsdp2", world_size=tensor_parallel, batch_size=2)
    t = tensor_parallel

    def saved(**changes):
        return measure(base.replace(**changes), "meta", count_flops=False).measured["saved_activations_by_component"]

    one, tp, sp = saved(), saved(tensor_parallel=t), saved(tensor_parallel=t, sequence_parallel=True)
    for component in ("scores", "softmax", "weighted_sum", "out_proj", "silu", "w2"):
        assert tp[component] == sp[component] == one[component] // t, component
    assert tp["cross_entropy"] == sp["cross_entropy"] == (one["cross_entropy"] - 4) // t + 4  # its fp32 loss
    for component in ("norm1", "norm2", "final_norm"):
        assert tp[component] == one[component] and sp[component] == one[component] // t, component
    for component in ("q_proj", "w1", "lm_head"):
        assert tp[component] == sp[component] == one[component], component


def test_the_sets_that_describe_tensor_parallelism():
    """The sets that describe FSDP2 on the reference model, the exact set and FSDP2's closed form, describe it at
    t > 1 too, with and without sequence parallelism (a set that does not name tensor_parallel describes t = 1 only,
    analytic.formula_sets.UNNAMED). Korthikanti's and Megatron-LM's, on GPT-2 setups:
    tests/test_published_korthikanti.py, the dist report."""
    sharded = TINY.replace(shard="fsdp2", world_size=4)
    assert describing(sharded) == ["fsdp2", "exact"]
    assert describing(sharded.replace(tensor_parallel=2)) == ["fsdp2", "exact"]
    assert describing(sharded.replace(tensor_parallel=2, sequence_parallel=True)) == ["fsdp2", "exact"]


def test_the_options_reach_the_command_line():
    parser = argparse.ArgumentParser()
    options.add_config_arguments(parser)
    args = parser.parse_args(["--preset", "tiny", "--shard", "fsdp2", "--world-size", "8", "--tensor-parallel", "4",
                              "--sequence-parallel"])
    assert options.spec_from_args(args, sharded=True) == TINY.replace(shard="fsdp2", world_size=8,
                                                                      tensor_parallel=4, sequence_parallel=True)


BAD = [
    (("--tensor-parallel", "2"), "give shard='fsdp2', got shard='none'"),
    (("--shard", "ddp", "--world-size", "2", "--tensor-parallel", "2"), "give shard='fsdp2', got shard='ddp'"),
    (("--shard", "fsdp2", "--world-size", "6", "--tensor-parallel", "4"), "world_size=6 is not a multiple"),
    (("--shard", "fsdp2", "--world-size", "2", "--sequence-parallel"), "give tensor_parallel > 1"),
    (("--shard", "fsdp2", "--world-size", "8", "--tensor-parallel", "8"), "does not divide num_heads=4"),
    (("--shard", "fsdp2", "--world-size", "4", "--tensor-parallel", "4", "--arch", "llama", "--kv-heads", "2"),
     "does not divide kv_heads=2"),
    (("--shard", "fsdp2", "--world-size", "4", "--tensor-parallel", "4", "--d-ff", "250"), "does not divide d_ff=250"),
    (("--shard", "fsdp2", "--world-size", "4", "--tensor-parallel", "4", "--sequence-parallel", "--context-length",
      "30"), "does not divide context_length=30"),
    (("--shard", "fsdp2", "--world-size", "2", "--tensor-parallel", "2", "--model", "hf:gpt2"),
     "runs on one device"),
    (("--tensor-parallel", "0"), "must be a positive integer"),
    (("--shard", "fsdp2", "--world-size", "4", "--tensor-parallel", "4", "--arch", "gpt2", "--context-length", "2"),
     "leaves a rank without rows of the embedding of context_length=2"),
    (("--shard", "fsdp2", "--world-size", "4", "--tensor-parallel", "4", "--vocab-size", "5"),
     "leaves a rank without rows of the embedding of vocab_size=5 (split in chunks of ⌈5/4⌉ = 2)"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(argv) for argv, _ in BAD])
def test_bad_tensor_parallel_input_is_one_line_and_exit_2(capsys, argv, message):
    assert main(["measure", "--preset", "tiny", "--device", "meta", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1 and message in captured.err, \
        captured.err


@needs_fsdp2
def test_the_report_grades_the_exact_set_on_tensor_parallel_ranks():
    """Rows simulated at 4 ranks, t = 1 and t = 2 with sequence parallelism (FSDP2's mixed precision): the report's
    tensor-parallel table holds each rank's peak, the exact set's error on it 0 at both, and Korthikanti's error
    none (it describes GPT-2's block with dropout in bf16, not this model)."""
    from profiler.reports.compare import predictions
    from profiler.reports.sharded import tensor_parallel_table

    rows = []
    for changes in ({}, {"tensor_parallel": 2, "sequence_parallel": True}):
        config = TINY.replace(shard="fsdp2", world_size=4, autocast="bfloat16", batch_size=2, **changes)
        row = {**measure(config, "meta", count_flops=False).to_dict(), "outcome": "ok"}
        rows.append({**row, "predicted": predictions(row)})
    table = tensor_parallel_table(rows)
    assert list(table["t"]) == [1, 2] and list(table["sequence parallel"]) == ["no", "yes"]
    assert list(table["peak"]) == [row["measured"]["peak_bytes"] for row in rows]
    assert list(table["exact peak error"]) == [0.0, 0.0]
    assert table["korthikanti error"].isna().all()


def test_tensor_parallelism_is_a_grid_axis(tmp_path):
    """A grid varies t and sequence parallelism around an FSDP2 base, each point its own key and label."""
    from profiler.experiments.grid import expand, load_grid

    path = tmp_path / "tp.toml"
    path.write_text('[base]\npreset = "tiny"\nshard = "fsdp2"\nworld_size = 8\nbatch_size = 2\n\n'
                    '[axes]\ntensor_parallel = [2, 4]\n\n[[points]]\npreset = "tiny"\nshard = "fsdp2"\n'
                    'world_size = 8\ntensor_parallel = 4\nsequence_parallel = true\nbatch_sizes = [2]\n')
    points = expand(load_grid(path))
    assert [(p.spec.setup.tensor_parallel, p.spec.setup.sequence_parallel) for p in points] == \
        [(1, False), (2, False), (4, False), (4, True)]
    assert [p.label.split(" b=2 ")[1] for p in points] == ["fsdp2×8", "fsdp2×8 tp2", "fsdp2×8 tp4", "fsdp2×8 tp4 sp"]
    assert len({p.key for p in points}) == 4
