"""The precision a model's network runs in, and the float32 that decisions are made in.

`sigwh ingest --dtype` picks the compute dtype of the networks' bodies: bfloat16 by
default on CUDA (about twice the throughput of float32 on tensor cores), float32 on
the CPU. It is applied with `torch.autocast` around the network only, never by casting
the weights: the float32 weights stay, so the same module answers in exact float32
whenever `float32_only()` is in force (the engine's verification of every mask it
returns, and every probability a job stores). Feature extraction (log-mel, fbank,
normalisation) and the FFT masking of the search always run in float32: features.py
turns autocast off inside, and the oracle masks outside the model call.

Only models whose network is torch can run in lower precision (zoo and hf kinds);
python-kind models take float32 numpy arrays (models/factory.py) and run as their
factory made them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

# Set by float32_only(): every autocast region then runs in float32.
_FLOAT32_ONLY: ContextVar[bool] = ContextVar("sigwh_float32_only", default=False)


def name_of(dtype: torch.dtype) -> str:
    """ "bfloat16" for torch.bfloat16, and so on (the names DTYPES and --dtype use)."""
    return str(dtype).removeprefix("torch.")


def default_dtype(device: str | torch.device) -> str:
    """The compute dtype a device gets when none is asked for: bfloat16 on CUDA (its
    float32 range, so no loss scaling or overflow), float32 elsewhere (CPUs gain
    little from autocast and some lack fast bfloat16 kernels)."""
    return "bfloat16" if torch.device(device).type == "cuda" else "float32"


def resolve(name: str | None, device: str | torch.device) -> str:
    """`name` checked (one of DTYPES), or the device's default when None."""
    if name is None:
        return default_dtype(device)
    if name not in DTYPES:
        raise ValueError(f"dtype {name!r} is not one of {', '.join(DTYPES)}")
    return name


@contextlib.contextmanager
def float32_only() -> Iterator[None]:
    """Within the block, every model runs in float32 whatever its dtype (the safety net
    of the search's decisions; see freqrex.engine).

    Full float32, not TensorFloat-32: PyTorch lets cuDNN convolutions use TF32 (10-bit
    mantissa) on Ampere and later GPUs by default, which would make the "float32" check
    of a conv network a lower-precision one; both TF32 switches are off in the block.
    """
    token = _FLOAT32_ONLY.set(True)
    cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn, matmul
        _FLOAT32_ONLY.reset(token)


def in_float32_only() -> bool:
    """Whether a float32_only() block is in force."""
    return _FLOAT32_ONLY.get()


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """The region a network body runs in: autocast to `dtype`, or nothing when dtype
    is float32 or a float32_only() block is in force."""
    if dtype == torch.float32 or in_float32_only():
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
