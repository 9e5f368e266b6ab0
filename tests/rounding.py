"""Comparing floating-point results whose two sides may run different kernels.

Another batch size, chunking, thread count or memory format can make the CPU's math libraries
(MKL's matrix products, oneDNN's convolutions) pick another kernel, which adds the same terms in
another order. The results then agree up to rounding, not bit for bit, and which kernel runs
depends on the CPU: on an Intel Xeon with AVX-512 a loss differed by one unit in the last place
between two batch sizes where an AMD EPYC gave the same bits. Results computed the same way (same
shapes and thread count, in one process) are still compared with ``torch.equal``.
"""

import torch

#: The default tolerance, in units of the dtype's epsilon: the reordered sums measured here
#: (batch sizes 1 to 1024, one or two threads, oneDNN on or off) differ by at most 3 units.
ULPS = 64


def assert_equal_up_to_rounding(actual: torch.Tensor, expected: torch.Tensor, ulps: int = ULPS,
                                scale: float | None = None) -> None:
    """``actual`` and ``expected`` (same dtype and shape) differ by at most ``ulps`` x eps x
    ``scale`` in every element, eps = ``torch.finfo(dtype).eps``. ``scale`` is the magnitude at
    which the values were summed, by default the largest |expected|: a reordered sum's rounding
    error scales with its terms, not with its result, so one absolute bound serves every element."""
    eps = torch.finfo(expected.dtype).eps
    if scale is None:
        scale = float(expected.abs().max()) if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=ulps * eps, atol=ulps * eps * scale)
