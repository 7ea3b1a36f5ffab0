"""FSDP2 and DDP (replicate) per rank: the simulation (fake process group, fake tensors) against real gloo runs, byte
for byte; the closed form of a rank's model states against the simulation; ZeRO stage 3 graded; clear errors."""
import argparse
import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from analytic.published import deepspeed, zero
from analytic.params import parameter_count
from analytic.sharding import fsdp2_model_states, padded_rows, shard_rows
from analytic.figures import with_model_states
from model import preset
from model.spec import StepSpec
from model.vocabulary import PHASES
from profiler.commands import options
from profiler.errors import UsageError
from profiler.measuring.measure import measure
from profiler.measuring.ranks import measure_ranks
from profiler.measuring.sharded import SHARDED_CATEGORIES, unsupported
from tests.strategies import step_specs

TINY = StepSpec(preset("tiny"))
needs_fsdp2 = pytest.mark.skipif(unsupported() is not None, reason=str(unsupported()))


def phase_figures(measured: dict) -> dict:
    """Every phase's peak, start and end bytes and categories at its peak: what must match to the byte."""
    return {phase: {key: measured["phases"][phase][key]
                    for key in ("peak_bytes", "start_bytes", "end_bytes", "categories_at_peak")}
            for phase in PHASES}


@needs_fsdp2
@pytest.mark.slow
@pytest.mark.parametrize("config", [
    # 2 ranks: FSDP2's mixed precision, selective checkpointing, accumulation over 2 micro-batches, no resharding
    TINY.replace(shard="fsdp2", world_size=2, autocast="bfloat16", checkpointing="selective", micro_batches=2,
                 reshard_after_forward=False),
    # 4 ranks: uneven shards (250 vocabulary rows, 30 positions over 4 ranks), GPT-2's block, full checkpointing
    TINY.replace(shard="fsdp2", world_size=4, arch="gpt2", dropout=0.0, vocab_size=250, context_length=30,
                 checkpointing="full"),
    # DDP as FSDP2's engine runs it: whole parameters, gradients all-reduced block by block
    TINY.replace(shard="ddp", world_size=2, autocast="bfloat16", checkpointing="selective", micro_batches=2),
    # tensor parallelism alone (model.tensor_parallel): dp = 1
    TINY.replace(shard="fsdp2", world_size=2, tensor_parallel=2),
    # 2 x 2 with sequence parallelism: GPT-2's block (biases, LayerNorm, learned positions split on the sequence, the
    # LM head tied to the embedding), 250 vocabulary rows over 2 "tp" ranks and their halves over 2 "dp" ranks
    TINY.replace(shard="fsdp2", world_size=4, tensor_parallel=2, sequence_parallel=True, arch="gpt2", dropout=0.0,
                 vocab_size=250, context_length=30),
    # 2 x 2: llama with RoPE and grouped-query attention (2 key/value heads, one per "tp" rank), FSDP2's mixed
    # precision, selective checkpointing, two micro-batches
    TINY.replace(shard="fsdp2", world_size=4, tensor_parallel=2, arch="llama", positional="rope", kv_heads=2,
                 autocast="bfloat16", checkpointing="selective", micro_batches=2),
], ids=["2-ranks-amp-selective-mb2-keep", "4-ranks-uneven-gpt2-full", "2-ranks-ddp-amp-selective-mb2",
       "tp2-dp1", "2x2-gpt2-sp-uneven", "2x2-llama-gqa-amp-selective-mb2"])
def test_simulated_ranks_equal_real_gloo_ranks(config):
    real = measure_ranks(config.replace(batch_size=2))
    for rank in range(config.setup.world_size):
        simulated = measure(config.replace(batch_size=2), "meta", rank=rank, count_flops=False).measured
        assert real[rank]["measured"]["rank"] == simulated["rank"] == rank
        assert phase_figures(simulated) == phase_figures(real[rank]["measured"]), f"rank {rank}"
        assert simulated["peak_bytes"] == real[rank]["measured"]["peak_bytes"]
        assert simulated["saved_activations_by_component"] == real[rank]["measured"]["saved_activations_by_component"]
    assert set(simulated["categories_at_peak"]) == set(SHARDED_CATEGORIES)


@pytest.mark.slow
@needs_fsdp2
def test_the_measure_command_on_cpu_starts_its_gloo_group(capsys):
    """`measure --device cpu` of a sharded step runs world_size real processes itself and shows rank 0's
    measurement, equal to the simulation's and to the exact set's, beside the sets."""
    from profiler.cli import main

    assert main(["measure", "--preset", "tiny", "--shard", "fsdp2", "--world-size", "2", "--device", "cpu",
                 "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    simulated = measure(TINY.replace(shard="fsdp2", world_size=2), "meta", count_flops=False).measured
    assert document["device"] == "cpu" and document["measured"]["rank"] == 0
    assert phase_figures(document["measured"]) == phase_figures(simulated)
    assert document["predicted"]["exact"]["peak_bytes"] == document["measured"]["peak_bytes"]


@pytest.mark.slow
@needs_fsdp2
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=step_specs(archs=("reference", "gpt2", "llama"), dtypes=("float32", "bfloat16"),
                         autocasts=("none", "bfloat16"), max_layers=2),
       world_size=st.integers(1, 9), shard=st.sampled_from(["fsdp2", "ddp"]), data=st.data())
def test_closed_form_model_states_equal_the_simulated_rank(config, world_size, shard, data):
    config = config.replace(shard=shard, world_size=world_size)
    rank = data.draw(st.integers(0, world_size - 1))
    measured = measure(config, "meta", rank=rank, count_flops=False).measured
    at_step = measured["phases"]["optimizer"]["categories_at_peak"]
    assert {name: at_step[name] for name in ("parameters", "gradients", "optimizer_state")} == \
        fsdp2_model_states(config, rank)


# Classes of the exact set's sharded programs (shipped, analytic.exact.sharded.SHIPPED_SETUPS): FSDP2 in fp32;
# FSDP2's mixed precision with full checkpointing and no resharding; DDP (replicate) of llama with RoPE,
# grouped-query attention, mixed precision and selective checkpointing; FSDP2's mixed precision over two
# micro-batches keeping the gradients (zero_grad 'zeros'); DDP of GPT-2's block over two micro-batches.
RANK_CLASSES = ("fsdp2-fp32", "fsdp2-amp-full-keep", "ddp-llama-gqa-amp-selective", "fsdp2-amp-mb-zeros",
                "ddp-gpt2-mb")


@needs_fsdp2
@pytest.mark.slow
@pytest.mark.parametrize("name", RANK_CLASSES)
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(heads=st.sampled_from([2, 4]), head_pairs=st.integers(1, 4), vocab=st.integers(2, 300),
       context=st.integers(2, 40), layers=st.integers(1, 4), d_ff=st.integers(1, 100),
       world_size=st.integers(2, 300), batch=st.integers(2, 4))
def test_exact_equals_the_simulated_rank(name, heads, head_pairs, vocab, context, layers, d_ff, world_size, batch):
    """The exact set's rank (analytic.exact.sharded) against the simulated rank 0, every phase (and micro-batch)
    to the byte and every phase's FLOPs, at sizes, layer counts and world sizes the derivation never traced (it
    traces 3 and 7 ranks, 1 to 5 layers, 2 micro-batches). FSDP2 on one rank (other programs, a class of its own) is
    graded by the dist report."""
    from analytic.exact.sharded import SHIPPED_SETUPS
    from analytic.formula_sets import exact_set
    options = {"num_heads": heads, "kv_heads": heads, **SHIPPED_SETUPS[name]}
    spec = StepSpec.of(vocab_size=vocab, context_length=context, num_layers=layers, d_ff=d_ff,
                       d_model=options["num_heads"] * 2 * head_pairs, world_size=world_size, **options)
    spec = spec.replace(batch_size=spec.setup.micro_batches * batch)
    measured = measure(spec, "meta").measured
    predicted = exact_set().predict(spec)
    assert phase_figures(predicted) == phase_figures(measured)
    assert predicted.get("micro_batches") == measured.get("micro_batches")  # every micro-batch's figures
    assert (predicted["flops"], predicted["flops_matmul"]) == (measured["flops"], measured["flops_matmul"])
    assert (predicted["peak_bytes"], predicted["peak_phase"]) == (measured["peak_bytes"], measured["peak_phase"])


@needs_fsdp2
def test_a_simulated_rank_keeps_a_16_bit_layer_norms_statistics_in_float32():
    """GPT-2's LayerNorms in pure bf16: FSDP2 on one rank (fake CPU tensors) saves each norm's mean and rstd in
    float32, as CUDA's kernel and one device on meta do (model.cuda_kernels.cuda_layer_norm; torch's fake kernel of
    a CPU tensor keeps them in bf16): the same saved activations, norm by norm and per layer."""
    spec = TINY.replace(arch="gpt2", dropout=0.1, dtype="bfloat16", num_layers=2, num_heads=2, batch_size=2)
    one = measure(spec, "meta", count_flops=False).measured
    rank = measure(spec.replace(shard="fsdp2", world_size=1), "meta", count_flops=False).measured
    s, b, h, layers = spec.model.context_length, 2, spec.model.d_model, spec.model.num_layers
    per_norm = 2 * s * b * h + 2 * 4 * s * b  # its bf16 input, its float32 mean and rstd
    norms = {"norm1": layers * per_norm, "norm2": layers * per_norm, "final_norm": per_norm}
    kept = [{norm: measured["saved_activations_by_component"][norm] for norm in norms} for measured in (one, rank)]
    assert kept == [norms, norms]
    assert rank["saved_activations_per_layer_bytes"] == one["saved_activations_per_layer_bytes"]


def test_cuda_layer_norm_holds_in_a_simulated_step_only_whatever_the_fake_cache_holds():
    """model.cuda_kernels.CudaKernels on fake CPU tensors: a simulated step's bf16 LayerNorm keeps float32 mean and
    rstd even where FakeTensorMode cached the CPU kernel's bf16 ones for the same arguments just before; a real
    rank's step (whose DTensors propagate shardings on fake tensors) and what runs after either keep the CPU
    kernel's; torch's table of fake kernels is as it was after each, an error inside included."""
    from torch._subclasses import fake_impls
    from torch._subclasses.fake_tensor import FakeTensorMode

    from model.cuda_kernels import LAYER_NORM, CudaKernels

    fake_kernel = fake_impls.op_implementations_dict[LAYER_NORM]

    def statistics_dtypes():
        x, weight = torch.empty(2, 3, 8, dtype=torch.bfloat16), torch.empty(8, dtype=torch.bfloat16)
        return [t.dtype for t in torch.ops.aten.native_layer_norm(x, [8], weight, weight, 1e-5)[1:]]

    with FakeTensorMode():
        before = statistics_dtypes()
        with CudaKernels(simulated_step=True):
            simulated = statistics_dtypes()
        with CudaKernels(simulated_step=False):
            real = statistics_dtypes()
        after = statistics_dtypes()
        with pytest.raises(RuntimeError), CudaKernels(simulated_step=True):
            raise RuntimeError("a step that fails")
    assert simulated == [torch.float32] * 2
    assert before == real == after == [torch.bfloat16] * 2
    assert fake_impls.op_implementations_dict[LAYER_NORM] is fake_kernel


@needs_fsdp2
def test_a_simulated_rank_leaves_the_excepthook_as_it_found_it():
    """init_process_group wraps sys.excepthook ("[rank0]: " before every line of an error, rank 0's) and destroying
    the group does not unwrap it: a simulated rank puts it back, so a sweep of many ranks prints an error as it is."""
    import sys

    hook = sys.excepthook
    for world_size in (2, 4):
        measure(TINY.replace(shard="fsdp2", world_size=world_size, batch_size=2), "meta", count_flops=False)
    assert sys.excepthook is hook


@needs_fsdp2
@pytest.mark.parametrize("tensor_parallel", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_a_fresh_derivation_gives_the_shipped_programs(tensor_parallel):
    """One shipped class derived again here, FSDP2 in fp32 over several ranks and, with tensor parallelism, FSDP2's
    mixed precision with sequence parallelism (the rest: tools/derive_sharded_programs.py --check)."""
    from analytic.exact.derivation.derive_sharded import derive_sharded_class
    from analytic.exact.sharded import shipped_setup_keys
    from analytic.exact.source import installed_torch, shipped
    from analytic.exact.versions import SHIPPED_MINORS, minor

    key = [key for key in shipped_setup_keys() if not key.one_rank and key.tensor_parallel == tensor_parallel
           and key.sequence_parallel == tensor_parallel][0]
    if minor(installed_torch()) not in SHIPPED_MINORS:
        pytest.skip("the shipped programs do not hold on this torch (each class is derived on first use)")
    assert derive_sharded_class(key) == shipped().sharded_class(key)


def test_shard_and_world_size_are_grid_axes(tmp_path):
    """A grid varies the shard strategy and the world size around a sharded base, one at a time; a world size
    around a base on one device is refused before anything runs."""
    from profiler.experiments.grid import GridError, expand, load_grid

    path = tmp_path / "ranks.toml"
    path.write_text('[base]\npreset = "tiny"\nshard = "fsdp2"\nworld_size = 4\nbatch_size = 2\n\n'
                    '[axes]\nshard = ["ddp"]\nworld_size = [2, 64]\n')
    configs = {(point.spec.setup.shard, point.spec.setup.world_size) for point in expand(load_grid(path))}
    assert configs == {("fsdp2", 4), ("ddp", 4), ("fsdp2", 2), ("fsdp2", 64)}
    path.write_text('[base]\npreset = "tiny"\n\n[axes]\nworld_size = [2]\n')
    with pytest.raises(GridError, match="needs a shard strategy"):
        load_grid(path)


def test_torch_chunk_is_the_shard():
    for rows in range(1, 12):
        for world_size in range(1, 6):
            chunks = [len(chunk) for chunk in torch.arange(rows).chunk(world_size)]
            chunks += [0] * (world_size - len(chunks))
            assert [shard_rows(rows, world_size, rank) for rank in range(world_size)] == chunks
            assert padded_rows(rows, world_size) == max(chunks)


@needs_fsdp2
def test_zero_stage_3_total_is_right_and_its_items_are_not():
    """Every row divides over 4 ranks: ZeRO's 16Ψ/N is the measured total to the byte, but FSDP2 keeps fp32 shards
    (4Ψ/N each for parameters and gradients) and AdamW's two moments (8Ψ/N), not ZeRO's 2 + 2 + 12."""
    config = TINY.replace(shard="fsdp2", world_size=4, autocast="bfloat16")
    measured = with_model_states(measure(config.replace(batch_size=2), "meta", count_flops=False).measured)
    predicted = zero.predict(config.replace(batch_size=2))
    psi = parameter_count(config.model)
    assert measured["model_states_bytes"] == predicted["model_states_bytes"] == 16 * psi / 4
    assert measured["model_states"] == {"parameters": psi, "gradients": psi, "optimizer_state": 2 * psi}
    assert predicted["model_states"] == {"parameters": psi / 2, "gradients": psi / 2, "optimizer_state": 3 * psi}
    # DeepSpeed's ZeRO-3 estimator adds a gathered largest layer (fp16 parameters and gradients, 4 bytes each of
    # its 256 · 64 embedding) and an fp16 copy of the parameters (2Ψ/N) to the same 16Ψ/N
    assert deepspeed.predict(config.replace(batch_size=2))["model_states_bytes"] == \
        measured["model_states_bytes"] + 4 * 256 * 64 + 2 * psi / 4


def test_padding_shows_at_many_ranks():
    """GPT-2 XL over 1024 ranks: 50,257 vocabulary rows pad to 1024 · 50 = 51,200, 1,600-wide vectors to 1,024 · 2:
    the closed form exceeds ZeRO's 16Ψ/N, which has no padding."""
    config = StepSpec(preset("gpt2-xl")).replace(shard="fsdp2", world_size=1024, autocast="bfloat16")
    states = sum(fsdp2_model_states(config).values())
    assert states > zero.predict(config)["model_states_bytes"] * 1.1


def test_sharded_config_errors():
    with pytest.raises(ValueError, match="needs a shard strategy"):
        TINY.replace(world_size=2)
    with pytest.raises(ValueError, match="FSDP2 option"):
        TINY.replace(reshard_after_forward=False)
    with pytest.raises(ValueError, match="shard must be one of"):
        TINY.replace(shard="ddp3")
    sharded = TINY.replace(shard="fsdp2", world_size=2)
    with pytest.raises(ValueError, match="CUDA"):
        measure(sharded, "cuda")
    if unsupported() is not None:  # an older torch: one line, whatever the device
        with pytest.raises(ValueError, match="needs torch"):
            measure(sharded, "meta")
        return
    with pytest.raises(ValueError, match="gloo group"):
        measure(sharded, "cpu")
    with pytest.raises(ValueError, match="rank must be in 0..1"):
        measure(sharded, "meta", rank=2)


def test_only_the_commands_of_a_rank_take_shard():
    parser = argparse.ArgumentParser()
    options.add_config_arguments(parser)
    args = parser.parse_args(["--preset", "tiny", "--shard", "fsdp2", "--world-size", "8",
                              "--no-reshard-after-forward"])
    assert options.spec_from_args(args, sharded=True) == TINY.replace(shard="fsdp2", world_size=8,
                                                                      reshard_after_forward=False)
    with pytest.raises(UsageError, match="taken by `measure`, `max-batch` and `predict`"):
        options.spec_from_args(args)


@needs_fsdp2
def test_report_section_counts_the_ranks_a_budget_needs():
    """Rows simulated at 1, 2 and 4 ranks: the table holds each rank's figures, and a budget between the peaks at
    2 and 1 ranks needs 2 ranks; one below every peak, none measured."""
    from profiler.reports.compare import predictions
    from profiler.reports.sharded import rank_table, ranks_needed, sharded_blocks

    rows = []
    for world_size in (1, 2, 4):
        config = TINY.replace(shard="fsdp2", world_size=world_size, autocast="bfloat16")
        row = {**measure(config.replace(batch_size=2), "meta", count_flops=False).to_dict(), "outcome": "ok"}
        rows.append({**row, "predicted": predictions(row)})
    table = rank_table(rows)
    peaks = dict(zip(table["ranks"], table["peak"]))
    assert peaks == {row["config"]["world_size"]: row["measured"]["peak_bytes"] for row in rows}
    assert peaks[1] > peaks[2] > peaks[4]
    assert list(table["fsdp2 error"]) == [0.0, 0.0, 0.0]  # every tiny row divides over 1, 2 and 4 ranks
    assert list(table["exact peak error"]) == [0.0, 0.0, 0.0]  # FSDP2 on one rank included (its own class)
    assert list(table["zero error"]) == [0.0, 0.0, 0.0]
    needed = ranks_needed(table, (peaks[1] + peaks[2]) // 2)
    assert needed["fewest ranks that fit"].tolist() == [2]
    assert ranks_needed(table, peaks[4] - 1)["fewest ranks that fit"].tolist() == ["—"]
    headings = [block.text for block in sharded_blocks(rows, "1MB") if type(block).__name__ == "Heading"]
    assert headings == ["Sharded steps: one rank of FSDP2 or DDP", "Ranks needed in 1MB"]
    assert sharded_blocks([{**rows[0], "config": {**rows[0]["config"], "shard": "none"}}], "1MB") == []


@needs_fsdp2
def test_a_ddp_rank_holds_one_devices_model_states_at_any_world_size():
    """DDP (replicate) at 2 and 5 ranks: the same rank peak, and model states of one device (ZeRO's baseline 16Ψ
    under amp, the closed form), labelled DDP in the report's table."""
    from profiler.reports.compare import predictions
    from profiler.reports.sharded import rank_table

    rows = []
    for world_size in (2, 5):
        config = TINY.replace(shard="ddp", world_size=world_size, autocast="bfloat16")
        row = {**measure(config.replace(batch_size=2), "meta", count_flops=False).to_dict(), "outcome": "ok"}
        rows.append({**row, "predicted": predictions(row)})
    table = rank_table(rows)
    assert table["peak"].nunique() == 1 and table["setup"].str.startswith("DDP · ").all()
    assert list(table["model states"]) == [16 * parameter_count(TINY.model)] * 2
    assert list(table["fsdp2 error"]) == list(table["zero error"]) == list(table["exact peak error"]) == [0.0, 0.0]
    assert table["deepspeed error"].isna().all()  # its estimators describe ZeRO-2 and ZeRO-3, not DDP


@pytest.mark.slow
@needs_fsdp2
def test_max_batch_of_a_rank(capsys):
    """max-batch --shard fsdp2 on meta: the exact set's answer, confirmed by two measurements (its step fits the
    budget on rank 0, one more does not); outside the exact set's domain (for-loop AdamW) the line through the
    peaks at batch 1 and 2 is the guess."""

    from profiler.cli import main

    budget = 6_000_000
    assert main(["max-batch", "--preset", "tiny", "--shard", "fsdp2", "--world-size", "4", "--device", "meta",
                 "--budget", f"{budget}B", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    config = TINY.replace(shard="fsdp2", world_size=4)
    assert answer["guessed_by"] == "the exact set's answer" and answer["exact_confirmed"]
    assert [probe["batch_size"] for probe in answer["probes"]] == [answer["max_batch"], answer["max_batch"] + 1]
    best = answer["max_batch"]
    assert measure(config.replace(batch_size=best), "meta", count_flops=False).measured["peak_bytes"] <= budget
    assert measure(config.replace(batch_size=best + 1), "meta", count_flops=False).measured["peak_bytes"] > budget
    assert main(["max-batch", "--preset", "tiny", "--shard", "fsdp2", "--world-size", "4", "--optimizer", "forloop",
                 "--device", "meta", "--budget", f"{budget}B", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["guessed_by"] == "the line through the peaks at 1 and 2"
    assert main(["max-batch", "--preset", "tiny", "--shard", "fsdp2", "--world-size", "4", "--device", "cuda"]) != 0
    assert "searched on meta" in capsys.readouterr().err
