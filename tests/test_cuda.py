"""profiler.measuring.cuda and profiler.measuring.speed: their logic on CPU with fakes, the real thing on a GPU
(marked cuda)."""
import pytest
import torch

from model.config import preset
from model.spec import StepSpec
from model.step import build, make_batch, train_step
from model.vocabulary import PHASES
from profiler.measuring.cuda import (
    CudaUnavailableError,
    PhaseRecorder,
    cuda_device,
    matmul_settings,
    measure_cuda_memory,
    uses_tf32,
)
from profiler.measuring.speed import summarize_timings, time_steps


class FakeReader:
    """An allocator whose current bytes follow a script: one list of allocated values per phase."""

    def __init__(self, script):
        self.script = script
        self.current, self.peak, self.resets, self.syncs = 0, 0, 0, 0

    def synchronize(self):
        self.syncs += 1

    def allocated(self):
        return self.current

    def peaks(self):
        return {"peak_bytes": self.peak, "requested_peak_bytes": self.peak - 10, "reserved_peak_bytes": 1 << 30}

    def reset_peaks(self):
        self.resets += 1
        self.peak = self.current  # as the allocator: the peak becomes the current value, not zero

    def run(self, values):
        for value in values:
            self.current = value
            self.peak = max(self.peak, value)


def test_phase_recorder_cuts_phases_at_marks():
    reader = FakeReader(None)
    recorder = PhaseRecorder(reader)
    reader.current = 100
    recorder.mark("forward")
    reader.run([300, 250])
    recorder.mark("backward")
    reader.run([200, 180])  # the peak of backward is its start, 250: reset keeps the current value
    recorder.mark("optimizer")
    reader.run([400, 120])
    recorder.mark("end")
    figures = recorder.figures()
    assert figures["phases"]["forward"] == {"start_bytes": 100, "end_bytes": 250, "peak_bytes": 300,
                                            "requested_peak_bytes": 290, "reserved_peak_bytes": 1 << 30}
    assert figures["phases"]["backward"]["peak_bytes"] == 250
    assert figures["phases"]["optimizer"]["end_bytes"] == 120
    assert (figures["peak_bytes"], figures["peak_phase"]) == (400, "optimizer")
    assert reader.resets == 3 and reader.syncs == 4


def test_phase_recorder_with_the_real_step_hook():
    reader = FakeReader(None)
    recorder = PhaseRecorder(reader)
    spec = StepSpec(preset("tiny"))
    model, optimizer = build(spec)
    train_step(model, optimizer, *make_batch(spec.model, 2), spec.setup, recorder.mark)
    assert tuple(recorder.figures()["phases"]) == PHASES


def test_figures_need_a_recorded_step():
    with pytest.raises(ValueError, match="no phase"):
        PhaseRecorder(FakeReader(None)).figures()


def test_cuda_device_checks(monkeypatch):
    with pytest.raises(ValueError, match="cuda device"):
        cuda_device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(CudaUnavailableError, match="no CUDA GPU"):
        cuda_device("cuda")
    with pytest.raises(CudaUnavailableError):
        measure_cuda_memory(StepSpec(preset("tiny")))


def test_tf32_settings_follow_torch():
    settings = matmul_settings()
    assert set(settings) == {"allow_tf32", "float32_matmul_precision", "cudnn_allow_tf32"}
    assert uses_tf32({"allow_tf32": False, "float32_matmul_precision": "highest"}) is False
    assert uses_tf32({"allow_tf32": False, "float32_matmul_precision": "high"}) is True
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")
        assert uses_tf32(matmul_settings())
    finally:
        torch.set_float32_matmul_precision(previous)


def test_summarize_timings():
    result = summarize_timings([0.3, 0.1, 0.2], tokens_per_step=1000, flops_per_step=10**12, peak=10**13)
    assert result["step_seconds"] == 0.2
    assert result["tokens_per_second"] == pytest.approx(5000)
    assert result["achieved_flops_per_second"] == pytest.approx(5e12)
    assert result["mfu"] == pytest.approx(0.5)
    bare = summarize_timings([0.5], tokens_per_step=10)
    assert bare["mfu"] is None and bare["achieved_flops_per_second"] is None
    with pytest.raises(ValueError):
        summarize_timings([], 1)


def test_time_steps_falls_back_to_perf_counter_on_cpu():
    spec = StepSpec(preset("tiny"))
    model, optimizer = build(spec)
    tokens, targets = make_batch(spec.model, 2)
    result = time_steps(model, optimizer, tokens, targets, spec.setup, warmup=1, repeats=3, flops_per_step=10**6,
                        peak=10**9)
    assert result["timer"] == "perf_counter" and result["device"] == "cpu" and result["dtype"] == "float32"
    assert len(result["step_seconds_all"]) == 3 and result["step_seconds"] > 0
    assert result["tokens_per_second"] == pytest.approx(64 / result["step_seconds"])
    assert 0 < result["mfu"] and result["matmul"] == matmul_settings()
    with pytest.raises(ValueError):
        time_steps(model, optimizer, tokens, targets, spec.setup, repeats=0)


@pytest.fixture(scope="module")
def cuda_figures():
    return measure_cuda_memory(StepSpec(preset("gpt2-small").replace(num_layers=2), batch_size=2))


@pytest.mark.cuda
def test_measured_phases_chain_and_bound_the_peak(cuda_figures):
    phases = cuda_figures["phases"]
    assert tuple(phases) == PHASES
    for before, after in zip(PHASES, PHASES[1:]):
        assert phases[before]["end_bytes"] == phases[after]["start_bytes"]
    for phase in phases.values():
        assert phase["peak_bytes"] >= max(phase["start_bytes"], phase["end_bytes"])
        assert phase["requested_peak_bytes"] <= phase["peak_bytes"]
        assert cuda_figures["peak_bytes"] >= phase["start_bytes"]
    assert cuda_figures["peak_bytes"] == max(p["peak_bytes"] for p in phases.values())
    # steady state: the step ends where it began (optimizer state kept, grads set to None) but for the loss it
    # returns, alive at its "end" mark: a 4-byte scalar in the allocator's smallest block, 512 bytes
    assert phases["optimizer"]["end_bytes"] - phases["forward"]["start_bytes"] == 512


@pytest.mark.cuda
def test_warmup_differs_and_baseline_is_reported(cuda_figures):
    warmup, measured = cuda_figures["warmup"]["phases"], cuda_figures["phases"]
    assert warmup["forward"]["start_bytes"] < measured["forward"]["start_bytes"]  # AdamW state made in warm-up
    assert warmup["forward"]["peak_bytes"] < measured["forward"]["peak_bytes"]
    baseline = cuda_figures["baseline"]
    assert cuda_figures["baseline_bytes"] >= 0 and baseline["model_and_batch_bytes"] > 0
    assert baseline["warmup_residue_bytes"] > 0  # at least the AdamW state
    environment = cuda_figures["environment"]
    assert environment["total_memory_bytes"] > 0 and environment["cuda_version"]


@pytest.mark.cuda
def test_successive_measurements_do_not_leak():
    first = measure_cuda_memory(StepSpec(preset("tiny")))
    held = torch.cuda.memory_allocated()
    second = measure_cuda_memory(StepSpec(preset("tiny")))
    assert torch.cuda.memory_allocated() == held
    assert second["phases"] == first["phases"]


@pytest.mark.cuda
def test_snapshot_is_written(tmp_path):
    path = tmp_path / "snapshot.pickle"
    measure_cuda_memory(StepSpec(preset("tiny")), snapshot_path=path)
    assert path.stat().st_size > 0


@pytest.mark.cuda
def test_time_steps_with_cuda_events():
    spec = StepSpec(preset("tiny"))
    model, optimizer = build(spec, "cuda")
    result = time_steps(model, optimizer, *make_batch(spec.model, 2, "cuda"), spec.setup, warmup=1, repeats=2)
    assert result["timer"] == "cuda_event" and result["step_seconds"] > 0


def test_speed_of_a_measurement_on_cpu():
    """The timing path a CUDA measurement runs, on CPU: perf_counter timer, no device peak, so no MFU; training
    days at the measured MFU are made by the compare step, only where an MFU was measured."""
    from analytic import exact
    from analytic.figures import model_flops
    from analytic.hardware import training_days
    from analytic.textbook import PROBLEM
    from profiler.reports.compare import training_days_at_measured_mfu

    spec = StepSpec(preset("tiny"))
    model, adamw = build(spec)
    tokens, targets = make_batch(spec.model, 2)
    speed = time_steps(model, adamw, tokens, targets, spec.setup, flops_per_step=10**6)
    assert speed["timer"] == "perf_counter" and speed["step_seconds"] > 0
    assert speed["tokens_per_second"] == pytest.approx(tokens.numel() / speed["step_seconds"])
    measurement = {"config": spec.flat(), "measured": {"speed": speed}}
    assert speed["mfu"] is None and training_days_at_measured_mfu(measurement) is None
    speed.update(mfu=0.25, peak_flops_per_second=10**12)
    step_flops = model_flops(exact.predict(spec.replace(batch_size=PROBLEM.batch_size))["flops"])
    assert training_days_at_measured_mfu(measurement) == training_days(step_flops, PROBLEM.steps, 10**12, 0.25)


def test_phase_recorder_with_micro_batches():
    """Two micro-batches: each phase's peak is its highest window, start of the first, end of the last."""
    reader = FakeReader(None)
    recorder = PhaseRecorder(reader)
    spec = StepSpec(preset("tiny")).replace(micro_batches=2)
    model, optimizer = build(spec)
    train_step(model, optimizer, *make_batch(spec.model, 4), spec.setup, recorder.mark)
    figures = recorder.figures()
    assert tuple(figures["phases"]) == PHASES and set(figures["micro_batches"]) == {"1", "2"}
    assert figures["phases"]["forward"]["start_bytes"] == figures["micro_batches"]["1"]["forward"]["start_bytes"]
    assert figures["phases"]["backward"]["end_bytes"] == figures["micro_batches"]["2"]["backward"]["end_bytes"]


@pytest.mark.cuda
@pytest.mark.parametrize("attention, dtype, autocast", [
    ("explicit", "float32", "none"), ("sdpa-math", "float32", "none"), ("sdpa-efficient", "float32", "none"),
    ("explicit", "bfloat16", "none"), ("sdpa-math", "bfloat16", "none"), ("sdpa-flash", "bfloat16", "none"),
    ("sdpa-efficient", "bfloat16", "none"), ("explicit", "float32", "bfloat16"), ("sdpa-flash", "float32", "bfloat16"),
    ("sdpa-efficient", "float32", "bfloat16")])
def test_cuda_phase_peaks_match_the_meta_simulation(attention, dtype, autocast):
    """What meta simulates is what CUDA allocates, per attention kernel, dtype and autocast (emulated on meta with
    CUDA's policy): each phase's peak on the GPU, less the baseline (memory held before the build, cuBLAS
    workspaces), within 1 % of the allocator model's replay of the meta step (workspaces a kernel allocates inside
    one call are not simulated)."""
    from profiler.measuring.measure import measure

    spec = StepSpec(preset("gpt2-small"), batch_size=2).replace(num_layers=2, attention=attention, dtype=dtype,
                                                                autocast=autocast)
    on_cuda = measure(spec, "cuda", count_flops=False).measured
    on_meta = measure(spec, "meta", count_flops=False).measured["allocator"]
    for phase in PHASES:
        simulated = on_meta["phases"][phase]["peak_bytes"]
        assert abs(on_cuda["phases"][phase]["peak_bytes"] - on_cuda["baseline_bytes"] - simulated) <= 0.01 * simulated
