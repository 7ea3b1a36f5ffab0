"""FSDP2 per rank: the simulation (fake process group, fake tensors) against real gloo runs, byte for byte; the
closed form of a rank's model states against the simulation; ZeRO stage 3 graded; clear errors."""
import argparse

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from analytic.published import zero
from analytic.params import parameter_count
from analytic.sharding import fsdp2_model_states, padded_rows, shard_rows
from analytic.figures import with_model_states
from model import preset
from model.config import ModelConfig
from model.vocabulary import PHASES
from profiler.commands import options
from profiler.errors import UsageError
from profiler.measuring.measure import measure
from profiler.measuring.ranks import measure_ranks
from profiler.measuring.sharded import SHARDED_CATEGORIES
from tests.strategies import model_configs

TINY = preset("tiny")


def phase_figures(measured: dict) -> dict:
    """Every phase's peak, start and end bytes and categories at its peak: what must match to the byte."""
    return {phase: {key: measured["phases"][phase][key]
                    for key in ("peak_bytes", "start_bytes", "end_bytes", "categories_at_peak")}
            for phase in PHASES}


@pytest.mark.parametrize("config", [
    # 2 ranks: FSDP2's mixed precision, selective checkpointing, accumulation over 2 micro-batches, no resharding
    TINY.replace(shard="fsdp2", world_size=2, autocast="bfloat16", checkpointing="selective", micro_batches=2,
                 reshard_after_forward=False),
    # 4 ranks: uneven shards (250 vocabulary rows, 30 positions over 4 ranks), GPT-2's block, full checkpointing
    TINY.replace(shard="fsdp2", world_size=4, arch="gpt2", dropout=0.0, vocab_size=250, context_length=30,
                 checkpointing="full"),
], ids=["2-ranks-amp-selective-mb2-keep", "4-ranks-uneven-gpt2-full"])
def test_simulated_ranks_equal_real_gloo_ranks(config):
    real = measure_ranks(config, batch_size=2)
    for rank in range(config.world_size):
        simulated = measure(config, 2, "meta", rank=rank, count_flops=False).measured
        assert real[rank]["measured"]["rank"] == simulated["rank"] == rank
        assert phase_figures(simulated) == phase_figures(real[rank]["measured"]), f"rank {rank}"
        assert simulated["peak_bytes"] == real[rank]["measured"]["peak_bytes"]
    assert set(simulated["categories_at_peak"]) == set(SHARDED_CATEGORIES)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=model_configs(archs=("reference", "gpt2", "llama"), dtypes=("float32", "bfloat16"),
                            autocasts=("none", "bfloat16"), max_layers=2),
       world_size=st.integers(1, 9), data=st.data())
def test_closed_form_model_states_equal_the_simulated_rank(config, world_size, data):
    config = config.replace(shard="fsdp2", world_size=world_size)
    rank = data.draw(st.integers(0, world_size - 1))
    measured = measure(config, 1, "meta", rank=rank, count_flops=False).measured
    at_step = measured["phases"]["optimizer"]["categories_at_peak"]
    assert {name: at_step[name] for name in ("parameters", "gradients", "optimizer_state")} == \
        fsdp2_model_states(config, rank)


def test_torch_chunk_is_the_shard():
    for rows in range(1, 12):
        for world_size in range(1, 6):
            chunks = [len(chunk) for chunk in torch.arange(rows).chunk(world_size)]
            chunks += [0] * (world_size - len(chunks))
            assert [shard_rows(rows, world_size, rank) for rank in range(world_size)] == chunks
            assert padded_rows(rows, world_size) == max(chunks)


def test_zero_stage_3_total_is_right_and_its_items_are_not():
    """Every row divides over 4 ranks: ZeRO's 16Ψ/N is the measured total to the byte, but FSDP2 keeps fp32 shards
    (4Ψ/N each for parameters and gradients) and AdamW's two moments (8Ψ/N), not ZeRO's 2 + 2 + 12."""
    config = TINY.replace(shard="fsdp2", world_size=4, autocast="bfloat16")
    measured = with_model_states(measure(config, 2, "meta", count_flops=False).measured)
    predicted = zero.predict(config, 2)
    psi = parameter_count(config)
    assert measured["model_states_bytes"] == predicted["model_states_bytes"] == 16 * psi / 4
    assert measured["model_states"] == {"parameters": psi, "gradients": psi, "optimizer_state": 2 * psi}
    assert predicted["model_states"] == {"parameters": psi / 2, "gradients": psi / 2, "optimizer_state": 3 * psi}


def test_padding_shows_at_many_ranks():
    """GPT-2 XL over 1024 ranks: 50,257 vocabulary rows pad to 1024 · 50 = 51,200, 1,600-wide vectors to 1,024 · 2:
    the closed form exceeds ZeRO's 16Ψ/N, which has no padding."""
    config = preset("gpt2-xl").replace(shard="fsdp2", world_size=1024, autocast="bfloat16")
    states = sum(fsdp2_model_states(config).values())
    assert states > zero.predict(config, 1)["model_states_bytes"] * 1.1


def test_sharded_config_errors():
    with pytest.raises(ValueError, match="needs a shard strategy"):
        TINY.replace(world_size=2)
    with pytest.raises(ValueError, match="FSDP2 option"):
        TINY.replace(reshard_after_forward=False)
    with pytest.raises(ValueError, match="shard must be one of"):
        TINY.replace(shard="ddp3")
    sharded = TINY.replace(shard="fsdp2", world_size=2)
    with pytest.raises(ValueError, match="CUDA"):
        measure(sharded, 1, "cuda")
    with pytest.raises(ValueError, match="gloo group"):
        measure(sharded, 1, "cpu")
    with pytest.raises(ValueError, match="rank must be in 0..1"):
        measure(sharded, 1, "meta", rank=2)


def test_only_measure_takes_shard():
    parser = argparse.ArgumentParser()
    options.add_config_arguments(parser)
    args = parser.parse_args(["--preset", "tiny", "--shard", "fsdp2", "--world-size", "8",
                              "--no-reshard-after-forward"])
    assert options.config_from_args(args, sharded=True) == ModelConfig(
        **{**TINY.to_dict(), "shard": "fsdp2", "world_size": 8, "reshard_after_forward": False})
    with pytest.raises(UsageError, match="measured only"):
        options.config_from_args(args)
