"""Real factories for `kind = "python"` tests (ref = "pymodels:<name>", tests/ is on the
path): the tone classifier of sigwarehouse/freqrex/toy.py (trained once, in under a
second) behind the factory interface, and variants of it that each have one defect."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from sigwarehouse.freqrex.toy import LABELS, SAMPLE_RATE, train_tone_classifier


@lru_cache(maxsize=1)
def net() -> torch.nn.Module:
    """The trained tone network (the same weights every time: a fixed seed), trained with
    gradients on even when first asked for inside inference mode."""
    with torch.inference_mode(False), torch.enable_grad():
        return train_tone_classifier().net.eval()


class Tones:
    """The good one: numpy float32 (batch, samples) in, softmax probabilities out."""

    labels = list(LABELS)
    sample_rate = SAMPLE_RATE

    def logits(self, waves: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            return net()(torch.from_numpy(waves))

    def __call__(self, waves: np.ndarray):
        return torch.softmax(self.logits(waves), dim=-1).numpy()


def tones() -> Tones:
    return Tones()


class TorchOut(Tones):
    def __call__(self, waves):
        return torch.softmax(self.logits(waves), dim=-1)  # a tensor, not an array


class Columns(Tones):
    def __call__(self, waves):
        return super().__call__(waves)[:, :3]  # one label short


class Transposed(Tones):
    def __call__(self, waves):
        return super().__call__(waves).T


class NaNs(Tones):
    def __call__(self, waves):
        p = super().__call__(waves)
        p[0, 0] = np.nan  # e.g. a normalisation that divides by the silence's zero energy
        return p


class Infs(Tones):
    def __call__(self, waves):
        p = super().__call__(waves)
        p[1, 2] = np.inf
        return p


class Negative(Tones):
    def __call__(self, waves):
        p = super().__call__(waves)
        p[:, 0] -= 0.25  # rows still sum to 1
        p[:, 1] += 0.25
        return p


class Logits(Tones):
    def __call__(self, waves):
        return torch.exp(self.logits(waves)).numpy()  # positive, never normalised


class Raises(Tones):
    def __call__(self, waves):
        raise RuntimeError("the model wants 2-D input")


class NaNOnLongInput(Tones):
    """Fine on the short load-time probe, NaN once the clips are longer than 0.5 s."""

    def __call__(self, waves):
        p = super().__call__(waves)
        if waves.shape[1] > SAMPLE_RATE // 2:
            p[:] = np.nan
        return p


class Mutates(Tones):
    def __call__(self, waves):
        p = super().__call__(waves)
        waves *= 0.0  # an object may scribble on its input
        return p


class NoLabels:
    sample_rate = SAMPLE_RATE

    def __call__(self, waves):
        return np.full((len(waves), 4), 0.25)


class BadRate(Tones):
    sample_rate = "16k"


def torch_out() -> TorchOut:
    return TorchOut()


def columns() -> Columns:
    return Columns()


def transposed() -> Transposed:
    return Transposed()


def nans() -> NaNs:
    return NaNs()


def infs() -> Infs:
    return Infs()


def negative() -> Negative:
    return Negative()


def logits() -> Logits:
    return Logits()


def raises() -> Raises:
    return Raises()


def nan_on_long_input() -> NaNOnLongInput:
    return NaNOnLongInput()


def mutates() -> Mutates:
    return Mutates()


def no_labels() -> NoLabels:
    return NoLabels()


def bad_rate() -> BadRate:
    return BadRate()


def not_callable() -> object:
    obj = Tones()
    return type("Plain", (), {"labels": obj.labels, "sample_rate": obj.sample_rate})()


def broken_factory() -> Tones:
    raise FileNotFoundError("weights.bin")


NOT_A_FACTORY = 42
