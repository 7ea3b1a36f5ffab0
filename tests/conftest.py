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
    """The tests run the exact set as the CLI does (analytic.exact.derivation.on_demand.deriving_programs, handed to
    the registry): the installed torch's programs, each class they lack derived on first use and cached (on a
    torch the shipped programs do not hold on: what `tools/torch_compat.py` verifies there), quietly (a
    derivation's line would break the tests of the CLI's output)."""
    try:
        from analytic.exact.derivation.on_demand import deriving_programs
        from analytic.formula_sets import use_exact_programs
    except ImportError:
        return
    use_exact_programs(deriving_programs(quiet=True))
