"""Which attention kernel a transformer network gets: PyTorch's fused
`scaled_dot_product_attention` ("sdpa") wherever transformers has it for the
architecture, its plain implementation ("eager") otherwise.

SDPA computes the same softmax(QK^T/sqrt(d))V as the eager kernel, up to float
rounding, in one fused kernel (flash or memory-efficient attention on CUDA): faster and
without the (batch, heads, frames, frames) attention matrix in memory, which is what
limits the mutant batch on a GPU. Asked for explicitly because older transformers
versions default to eager. An architecture without SDPA support (transformers raises
ValueError for it) silently gets its default; the kernel used is recorded with the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

M = TypeVar("M")


def build_with_sdpa(model_class: Callable[[Any], M], config: Any) -> M:
    """`model_class(config)` with SDPA attention, or with the config's own choice where
    the architecture does not support SDPA."""
    own = getattr(config, "_attn_implementation", None)
    try:
        config._attn_implementation = "sdpa"
        return model_class(config)
    except (ValueError, ImportError):
        config._attn_implementation = own
        return model_class(config)


def load_with_sdpa(load: Callable[..., M], *args: Any, **kwargs: Any) -> M:
    """`load(*args, attn_implementation="sdpa", **kwargs)` (a from_pretrained), or the
    same without asking for SDPA where the architecture does not support it."""
    try:
        return load(*args, attn_implementation="sdpa", **kwargs)
    except (ValueError, ImportError) as exc:
        if "attn" not in str(exc).lower() and "sdpa" not in str(exc).lower():
            raise  # not about attention: the caller's error to report
        return load(*args, **kwargs)


def attention_of(model: Any) -> str | None:
    """The attention kernel of the first transformers model inside `model` ("sdpa",
    "eager", ...), or None for a network without one."""
    modules = model.modules() if hasattr(model, "modules") else [model]
    for module in modules:
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "_attn_implementation"):
            return config._attn_implementation
    return None
