"""Dense peak FLOP/s by device and dtype, model FLOPs utilisation and training time. No torch import.

Peaks are the vendors' dense tensor-core (or, for float32, CUDA-core) figures; the datasheets print the sparse
tensor figures, which are twice these. Integers of FLOP/s.
"""
from __future__ import annotations

import re

from analytic.units import SECONDS_PER_DAY

T = 10**12

# NVIDIA A100 Tensor Core GPU datasheet (2021), SXM and PCIe alike: FP32 19.5 TFLOPS, TF32 156 (312 sparse),
# BF16 / FP16 312 (624 sparse).
_A100 = {"float32": 19_500 * 10**9, "tf32": 156 * T, "bfloat16": 312 * T, "float16": 312 * T}
# NVIDIA H100 Tensor Core GPU datasheet, SXM5: FP32 67 TFLOPS, TF32 989 sparse -> 494.7 dense,
# BF16 / FP16 1,979 sparse -> 989.4 dense.
_H100_SXM = {"float32": 67 * T, "tf32": 494_700 * 10**9, "bfloat16": 989_400 * 10**9, "float16": 989_400 * 10**9}
# Same datasheet, PCIe: FP32 51 TFLOPS, TF32 756 sparse -> 378 dense, BF16 / FP16 1,513 sparse -> 756 dense.
_H100_PCIE = {"float32": 51 * T, "tf32": 378 * T, "bfloat16": 756 * T, "float16": 756 * T}

PEAK_FLOPS: dict[str, dict[str, int]] = {
    "A100": _A100,
    "H100 SXM": _H100_SXM,
    "H100 PCIe": _H100_PCIE,
    # NVIDIA H200 Tensor Core GPU datasheet (SXM): the H100 SXM compute figures with more, faster HBM3e.
    "H200": dict(_H100_SXM),
}

# torch.cuda.get_device_name() spellings -> table key; first match wins. The NVL boards (H100 NVL, H200 NVL) have
# other peaks and are left unknown on purpose.
_NAME_PATTERNS = (
    (re.compile(r"\bH200\b(?!.*\bNVL\b)", re.IGNORECASE), "H200"),  # "NVIDIA H200"
    (re.compile(r"\bH100\b.*\bPCIe\b", re.IGNORECASE), "H100 PCIe"),  # "NVIDIA H100 PCIe"
    (re.compile(r"\bH100\b.*\b(HBM3|SXM\d?)\b", re.IGNORECASE), "H100 SXM"),  # "NVIDIA H100 80GB HBM3"
    (re.compile(r"\bA100\b", re.IGNORECASE), "A100"),  # "NVIDIA A100-SXM4-80GB", "NVIDIA A100-PCIE-40GB"
)
KNOWN_NAMES = ("NVIDIA A100-SXM4-80GB", "NVIDIA A100-PCIE-40GB", "NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe",
               "NVIDIA H200")


def device_key(device_name: str) -> str:
    """The PEAK_FLOPS key for a device name as torch.cuda.get_device_name reports it."""
    for pattern, key in _NAME_PATTERNS:
        if pattern.search(device_name):
            return key
    raise ValueError(f"no peak FLOP/s known for device {device_name!r}; known devices: "
                     f"{', '.join(PEAK_FLOPS)} (named like {', '.join(KNOWN_NAMES)})")


def peak_flops(device_name: str, dtype: str, tf32: bool = False) -> int:
    """Dense peak FLOP/s of `device_name` for `dtype` ("float32", "bfloat16", "float16"; "torch." prefix allowed).

    float32 with tf32=True (torch.backends.cuda.matmul.allow_tf32, or float32 matmul precision "high") uses the
    TF32 tensor-core peak; tf32 has no effect on 16-bit dtypes.
    """
    table = PEAK_FLOPS[device_key(device_name)]
    name = dtype.removeprefix("torch.")
    column = "tf32" if name == "float32" and tf32 else name
    if column not in table or column == "tf32" and name != "float32":
        raise ValueError(f"no peak FLOP/s for dtype {dtype!r}; known: float32, bfloat16, float16")
    return table[column]


def _positive(**values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")


def mfu(flops_per_step: float, step_seconds: float, peak: float) -> float:
    """Model FLOPs utilisation: achieved FLOP/s over peak = (flops_per_step / step_seconds) / peak."""
    _positive(flops_per_step=flops_per_step, step_seconds=step_seconds, peak=peak)
    return flops_per_step / step_seconds / peak


def training_days(flops_per_step: float, steps: float, peak: float, mfu: float) -> float:
    """Days to run `steps` steps: total FLOPs / (peak · mfu) seconds, over 86,400 seconds a day."""
    _positive(flops_per_step=flops_per_step, steps=steps, peak=peak, mfu=mfu)
    if mfu > 1:
        raise ValueError(f"mfu is a fraction of the peak, at most 1; got {mfu}")
    return flops_per_step * steps / (peak * mfu) / SECONDS_PER_DAY
