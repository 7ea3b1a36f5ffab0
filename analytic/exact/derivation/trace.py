"""One traced step of any model, as the derivation reads it: trace(spec) -> Trace.

The step is traced as measure() traces it (profiler.measuring.measure.trace_step: the model, AdamW and a batch built
under the storage tracker, then train_step), each storage in the category measure() gives it (the tracker's Roles:
parameters, buffers, inputs, optimizer state, gradients, saved for backward, allocated by the optimizer phase,
else a temporary, in that order of precedence): one category per storage, its allocation's and its free's, in
whichever window each falls, so that a program's live bytes by category are measure()'s. Every allocation and free
of a window between two phase marks is an Event: its sign, category, bytes, the op that allocated the storage or ran
last before it was freed ('aten.mm'), and the module running that op ('(the model)' outside its submodules, '' in
backward). Windows are named
`<step>.<phase>`, the phase numbered by micro-batch where there are several (`warmup.forward_2`); `between` is the
window from one step's end to the next step's start. Options name the windows a derivation needs:

    steps            the steps traced: ("warmup", "measured") as measure() runs them, or ("warmup",) alone
    stub_optimizer   AdamW's step does nothing (no state): the optimizer window is zero_grad alone
    set_to_none      after the steps, zero_grad(set_to_none=True) as a window of its own, `zero_grad_none`

A Trace also holds the constant storages (live as the first step starts: parameters, buffers, inputs and whatever
the model's construction left behind, each an Event in its category) and the storages autograd saved for backward
in micro-batch 1 of the last step (recomputation included), with the component and layer that saved each
(profiler.measuring.tracker.SavedTensorRecorder), as measure() counts them; with `count_flops`, every op call of
the measured step that counts FLOPs (profiler.measuring.flops.OpFlops: its phase, forward, backward, optimizer or
recompute, as measure() counts it; the op; its FLOPs; whether they are matmul FLOPs), in order.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from analytic.exact.model_programs import MEASURED, WARMUP
from model.spec import StepSpec
from profiler.measuring.flops import MATMUL_OPS
from profiler.measuring.measure import OneDevice, trace_step
from profiler.measuring.tracker import ALLOC

STEPS = (WARMUP, MEASURED)
ZERO_GRAD_NONE = "zero_grad_none"


@dataclass(frozen=True)
class Event:
    sign: str  # "+" or "-"
    category: str
    nbytes: int
    op: str = ""  # the op that allocated the storage, or the last op before it was freed
    module: str = ""  # the module running that op; "" in backward


@dataclass(frozen=True)
class Saved(Event):
    """The allocation of a storage saved for backward, with the component and layer (None outside the layers) that
    saved it."""

    component: str = ""
    layer: int | None = None


@dataclass(frozen=True)
class FlopCall:
    phase: str
    op: str
    flops: int
    matmul: bool


@dataclass
class Trace:
    windows: dict[str, list[Event]]
    constant: list[Event]
    saved: list[Saved]
    flops: list[FlopCall] = field(default_factory=list)


class _Traced(OneDevice):
    """One device, and the module each op of the forward runs in (forward hooks on every module); with
    `stub_optimizer`, an AdamW whose step does nothing."""

    def __init__(self, spec: StepSpec, device: str, stub_optimizer: bool = False):
        super().__init__(spec, device)
        self.stub_optimizer = stub_optimizer

    def build(self, spec: StepSpec, tracker):
        model, adamw = super().build(spec, tracker)
        if self.stub_optimizer:
            adamw.step = lambda *args, **kwargs: None
        self.tracker, self.stack, self.changes = tracker, [], [(0, "")]
        for path, module in model.named_modules():
            module.register_forward_pre_hook(lambda _m, _a, path=path: self._enter(path))
            module.register_forward_hook(lambda _m, _a, _o: self._leave())
        return model, adamw

    def _enter(self, path: str) -> None:
        self.stack.append("(the model)" if path in ("", "inner") else path.removeprefix("inner."))
        self.changes.append((len(self.tracker.ops), self.stack[-1]))

    def _leave(self) -> None:
        self.stack.pop()
        self.changes.append((len(self.tracker.ops), self.stack[-1] if self.stack else ""))

    def module_at(self, op_index: int) -> str:
        """The module running when op `op_index` ran: the last change at or before it (changes are in op order)."""
        at = bisect.bisect_right(self.changes, op_index, key=lambda change: change[0])
        return self.changes[at - 1][1] if at else ""


def describe(spec: StepSpec) -> str:
    """The traced model and its sizes, for a message: `hf:gpt2 at B=3, T=7, H=5, head size 88, F=13, V=17, L=1`."""
    model = spec.model
    return (f"{model.source} at B={spec.micro_batch_size}, T={model.context_length}, H={model.num_heads}, head size "
            f"{model.d_model // model.num_heads}, F={model.d_ff}, V={model.vocab_size}, L={model.num_layers}")


def window_names(steps: dict[str, list[str]]) -> list[str]:
    """The name of the window after each mark ({step: its mark names}, in order; "" after the last one)."""
    names = []
    for step, marks in steps.items():
        micro_batches = marks.count("forward")
        seen = dict.fromkeys(marks, 0)
        for name in marks:
            seen[name] += 1
            numbered = micro_batches > 1 and name in ("forward", "backward")
            names.append("between" if name == "end" else f"{step}.{name}" + (f"_{seen[name]}" if numbered else ""))
    return names[:-1] + [""]


def trace(spec: StepSpec, device: str = "meta", steps: tuple[str, ...] = STEPS, stub_optimizer: bool = False,
          set_to_none: bool = False, count_flops: bool = False) -> Trace:
    """The windows, constant storages and saved storages of `spec`'s step traced on `device`, and with
    `count_flops` its FLOP-counting calls (module docstring)."""
    where = _Traced(spec, device, stub_optimizer)
    traced = trace_step(where, spec, count_flops=count_flops, steps=steps)
    tracker, category_of = traced.tracker, traced.category_of
    marks = [mark for step in steps for mark in traced.marks[step]]
    names = window_names({step: [mark.name for mark in traced.marks[step]] for step in steps})
    if set_to_none:
        with tracker:
            marks.append(tracker.mark(ZERO_GRAD_NONE))
            traced.adamw.zero_grad(set_to_none=True)
            marks.append(tracker.mark("end"))
        names += [ZERO_GRAD_NONE, ""]

    def event(index: int) -> Event:
        sign, sid, nbytes = tracker.events[index]
        at = tracker.event_ops[index]
        op = str(tracker.ops[at - 1].overloadpacket) if at else ""
        return Event("+" if sign == ALLOC else "-", category_of.get(sid, "temporaries"), nbytes, op,
                     where.module_at(at - 1))

    windows = {name: [event(index) for index in range(begin.event_index, end.event_index) if tracker.events[index][2]]
               for name, begin, end in zip(names, marks, marks[1:]) if name}
    live: dict[int, int] = {}
    for sign, sid, nbytes in tracker.events[:marks[0].event_index]:
        if sign == ALLOC:
            live[sid] = nbytes
        else:
            live.pop(sid, None)
    constant = [Event("+", category_of.get(sid, "temporaries"), nbytes) for sid, nbytes in sorted(live.items())
                if nbytes]
    saved = [Saved("+", "saved_activations", tracker.nbytes[sid], record.op,
                   where.module_at(tracker.op_index[sid]) if sid in tracker.op_index else "", record.component,
                   record.layer)
             for sid, record in traced.saved.items()
             if sid not in tracker.ignored and category_of.get(sid) == "saved_activations" and tracker.nbytes[sid]]
    flops = [FlopCall(phase, str(op), count, op in MATMUL_OPS) for phase, op, count in traced.flop_counter.calls]
    return Trace(windows, constant, saved, flops)
