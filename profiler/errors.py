"""The errors the CLI turns into one line on stderr and exit status 2 (no torch import: the CLI stays fast)."""


class UsageError(ValueError):
    """Bad input: an option, a size, a folder that cannot be used as asked."""


class CudaUnavailableError(RuntimeError):
    """A CUDA measurement was asked for where torch sees no GPU."""


class TorchUnavailableError(RuntimeError):
    """Torch is needed (to derive programs of the exact model that are not shipped) and cannot be imported; not a
    ValueError, so that no caller takes it for a configuration outside a formula's domain."""
