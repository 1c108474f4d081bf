"""Audio feature extraction in torch, batched, on the waveforms' device.

The Hugging Face feature extractors work per clip in numpy on the CPU; the freqrex
search feeds thousands of mutants per clip, so the same features are computed here on
whole batches without leaving the device. Each function reproduces one Hugging Face
extractor (checked numerically in tests/test_features.py):

- `wav2vec2_normalize`  ~ `Wav2Vec2FeatureExtractor` (wav2vec2, HuBERT, DistilHuBERT, WavLM)
- `whisper_log_mel`     ~ `WhisperFeatureExtractor`
- `ast_fbank`           ~ `ASTFeatureExtractor` (Kaldi-style fbank, numpy path)

Each runs in float32 even inside an autocast region (a zoo network computes its
features inside the region its body runs in, models/precision.py): a log of a mel
power in bfloat16 would keep about 3 significant digits.

The mel filter matrices come from `transformers.audio_utils.mel_filter_bank`, the very
function the Hugging Face extractors use, so the filters are identical by construction.
"""

from __future__ import annotations

import functools
import warnings
from functools import lru_cache

import torch
import torch.nn.functional as F

# AudioSet statistics, the ASTFeatureExtractor defaults.
AST_MEAN = -4.2677393
AST_STD = 4.5689974
# float32 machine epsilon: Kaldi's floor before the log.
_KALDI_MEL_FLOOR = 1.192092955078125e-07


@lru_cache(maxsize=16)
def _mel_filters_np(
    n_freqs: int, n_mels: int, f_min: float, f_max: float, sample_rate: int, kind: str
):
    from transformers.audio_utils import mel_filter_bank  # transformers: only for mel features

    if kind == "slaney":  # Whisper
        return mel_filter_bank(n_freqs, n_mels, f_min, f_max, sample_rate, "slaney", "slaney")
    # Kaldi, as ASTFeatureExtractor builds it when torchaudio is absent. With 128 filters
    # on a 512-point FFT the lowest filter is empty (the warning says so); AST has it too.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
        return mel_filter_bank(
            n_freqs,
            n_mels,
            f_min,
            f_max,
            sample_rate,
            None,
            "kaldi",
            triangularize_in_mel_space=True,
        )


def _mel_filters(
    n_freqs: int,
    n_mels: int,
    f_min: float,
    f_max: float,
    sample_rate: int,
    kind: str,
    device: torch.device,
) -> torch.Tensor:
    """Mel filter matrix (n_freqs, n_mels), float32, on `device`."""
    mat = _mel_filters_np(n_freqs, n_mels, float(f_min), float(f_max), int(sample_rate), kind)
    return torch.as_tensor(mat, dtype=torch.float32, device=device)


def fit_length(waves: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Return `waves` (batch, samples) zero-padded on the right or truncated to n_samples."""
    t = waves.shape[-1]
    if t < n_samples:
        return F.pad(waves, (0, n_samples - t))
    return waves[..., :n_samples]


def float32_features(fn):
    """Run a feature function with autocast off (its inputs are float32 already)."""

    @functools.wraps(fn)
    def run(waves: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        with torch.autocast(device_type=waves.device.type, enabled=False):
            return fn(waves, *args, **kwargs)

    return run


@float32_features
def wav2vec2_normalize(waves: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Zero-mean, unit-variance normalisation of each row of `waves` (batch, samples).

    Returns a tensor of the same shape: `(x - mean) / sqrt(var + eps)` with the population
    variance, as `Wav2Vec2FeatureExtractor(do_normalize=True)` does without padding.
    """
    mean = waves.mean(dim=-1, keepdim=True)
    var = waves.var(dim=-1, keepdim=True, unbiased=False)
    return (waves - mean) / torch.sqrt(var + eps)


@float32_features
def whisper_log_mel(
    waves: torch.Tensor,
    *,
    sample_rate: int = 16000,
    n_mels: int = 80,
    n_fft: int = 400,
    hop_length: int = 160,
    n_samples: int | None = 480000,
) -> torch.Tensor:
    """Whisper log-mel spectrogram of `waves` (batch, samples), shape (batch, n_mels, frames).

    `n_samples` pads (with zeros) or truncates every clip first, as Whisper does to its
    30 s window (480000 samples, 3000 frames); None keeps the clips' own length, giving
    samples // hop_length frames. Steps as in Whisper: centred STFT with a periodic Hann
    window, power, slaney mel filters up to 8 kHz, log10 floored at 1e-10, each clip
    clamped to its maximum minus 8, then (x + 4) / 4. Refuses clips of n_fft // 2 samples
    or fewer (the reflect padding needs more).
    """
    if n_samples is not None:
        waves = fit_length(waves, n_samples)
    if waves.shape[-1] <= n_fft // 2:
        raise ValueError(f"clips need more than {n_fft // 2} samples, got {waves.shape[-1]}")
    window = torch.hann_window(n_fft, device=waves.device, dtype=torch.float32)
    stft = torch.stft(
        waves.float(), n_fft, hop_length, window=window, center=True, return_complex=True
    )
    power = stft[..., :-1].abs().square()  # Whisper drops the last frame
    filters = _mel_filters(1 + n_fft // 2, n_mels, 0.0, 8000.0, sample_rate, "slaney", waves.device)
    mel = torch.matmul(filters.T, power)
    log_spec = mel.clamp(min=1e-10).log10()
    peak = log_spec.amax(dim=(-2, -1), keepdim=True)
    log_spec = torch.maximum(log_spec, peak - 8.0)
    return (log_spec + 4.0) / 4.0


@float32_features
def ast_fbank(
    waves: torch.Tensor,
    *,
    sample_rate: int = 16000,
    num_mel_bins: int = 128,
    max_length: int | None = 1024,
    normalize: bool = True,
    mean: float = AST_MEAN,
    std: float = AST_STD,
) -> torch.Tensor:
    """Kaldi-style log-mel filterbank as AST expects it, shape (batch, frames, num_mel_bins).

    Per 25 ms frame (10 ms shift, no padding at the edges): remove the DC offset,
    pre-emphasis 0.97, symmetric Hann window, 512-point power spectrum, Kaldi mel filters
    from 20 Hz to Nyquist, natural log floored at float32 epsilon. Frames are then
    zero-padded or truncated to `max_length` (None keeps them all) and, if `normalize`,
    mapped to (x - mean) / (2 * std) — the ASTFeatureExtractor recipe. Refuses clips
    shorter than one frame.
    """
    frame_len = int(round(0.025 * sample_rate))
    shift = int(round(0.010 * sample_rate))
    n_fft = 1 << (frame_len - 1).bit_length()  # next power of two: 512 at 16 kHz
    if waves.shape[-1] < frame_len:
        raise ValueError(f"clips need at least {frame_len} samples, got {waves.shape[-1]}")
    frames = waves.float().unfold(-1, frame_len, shift)  # (batch, frames, frame_len)
    frames = frames - frames.mean(dim=-1, keepdim=True)
    preemph = 0.97
    frames = torch.cat(
        [frames[..., :1] * (1 - preemph), frames[..., 1:] - preemph * frames[..., :-1]], dim=-1
    )
    window = torch.hann_window(frame_len, periodic=False, device=waves.device)
    power = torch.fft.rfft(frames * window, n=n_fft).abs().square()
    filters = _mel_filters(
        n_fft // 2 + 1, num_mel_bins, 20.0, sample_rate // 2, sample_rate, "kaldi", waves.device
    )
    fbank = torch.matmul(power, filters).clamp(min=_KALDI_MEL_FLOOR).log()
    if max_length is not None:
        n = fbank.shape[1]
        fbank = F.pad(fbank, (0, 0, 0, max_length - n)) if n < max_length else fbank[:, :max_length]
    if normalize:
        fbank = (fbank - mean) / (2 * std)
    return fbank
