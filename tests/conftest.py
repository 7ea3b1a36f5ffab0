import pytest


def pytest_collection_modifyitems(config, items):
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords and not has_cuda:
            item.add_marker(skip)


def pytest_sessionstart(session):
    """On a torch the exact model's shipped programs do not hold on, the tests run the programs derived on it, as the CLI
    does (analytic.exact.source: each class on first use, cached): what `tools/torch_compat.py` verifies there. A sharded
    rank's programs are derived on first use on every torch (analytic.exact.sharded)."""
    try:
        import torch

        from analytic.exact.versions import unverified_notice
        from analytic.exact.derivation import on_demand
    except ImportError:
        return
    if unverified_notice(torch.__version__):
        on_demand.install(quiet=True)  # a derivation's line would break the tests of the CLI's output
    on_demand.install_sharded(quiet=True)  # a sharded rank's programs, on every torch
