import pytest

from analytic.hardware import PEAK_FLOPS, device_key, mfu, peak_flops, training_days


@pytest.mark.parametrize("name, key", [
    ("NVIDIA A100-SXM4-80GB", "A100"),
    ("NVIDIA A100-SXM4-40GB", "A100"),
    ("NVIDIA A100-PCIE-40GB", "A100"),
    ("NVIDIA A100 80GB PCIe", "A100"),
    ("NVIDIA H100 80GB HBM3", "H100 SXM"),
    ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H200", "H200"),
    ("H100 SXM", "H100 SXM"),
])
def test_device_names(name, key):
    assert device_key(name) == key


@pytest.mark.parametrize("name", ["NVIDIA H100 NVL", "NVIDIA H200 NVL", "Tesla V100-SXM2-16GB", ""])
def test_unknown_devices_list_the_known(name):
    with pytest.raises(ValueError, match="known devices: A100, H100 SXM, H100 PCIe, H200"):
        device_key(name)


def test_table_values():
    assert peak_flops("NVIDIA A100-SXM4-80GB", "float32") == 19.5e12
    assert peak_flops("NVIDIA A100-SXM4-80GB", "float32", tf32=True) == 156e12
    assert peak_flops("NVIDIA A100-SXM4-80GB", "torch.bfloat16") == 312e12
    assert peak_flops("NVIDIA H100 80GB HBM3", "float32") == 67e12
    assert peak_flops("NVIDIA H100 80GB HBM3", "float32", tf32=True) == 494.7e12
    assert peak_flops("NVIDIA H100 80GB HBM3", "bfloat16", tf32=True) == 989.4e12  # tf32 ignored for bf16
    assert peak_flops("NVIDIA H100 PCIe", "float32") == 51e12
    assert peak_flops("NVIDIA H100 PCIe", "float32", tf32=True) == 378e12
    assert peak_flops("NVIDIA H100 PCIe", "bfloat16") == 756e12
    assert PEAK_FLOPS["H200"] == PEAK_FLOPS["H100 SXM"]
    assert all(isinstance(v, int) for table in PEAK_FLOPS.values() for v in table.values())


def test_unknown_dtype():
    with pytest.raises(ValueError, match="dtype"):
        peak_flops("NVIDIA H200", "int8")
    with pytest.raises(ValueError, match="dtype"):
        peak_flops("NVIDIA H200", "tf32")


def test_mfu_and_days():
    assert mfu(312e12, 2.0, 312e12) == 0.5
    # 1e21 FLOPs at 40 % of 1e15 FLOP/s: 2.5e6 s = 28.935... days
    assert training_days(1e15, 1e6, 1e15, 0.4) == pytest.approx(2.5e6 / 86_400)
    with pytest.raises(ValueError, match="step_seconds"):
        mfu(1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="at most 1"):
        training_days(1.0, 1.0, 1.0, 1.5)
