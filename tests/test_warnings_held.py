"""Other libraries' warnings during a job's progress bar: held while it runs and said once
each after it, with the library and the count, even when the job fails."""

from __future__ import annotations

import pytest
from transformers.audio_utils import mel_filter_bank

from sigwarehouse.jobs.ingest import warnings_held

MEL = "At least one mel filter has all zero values"


def _empty_filter() -> None:
    """transformers' own warning, as building an AST feature extractor raises it."""
    mel_filter_bank(257, 128, 20.0, 8000.0, 16000, None, "kaldi", triangularize_in_mel_space=True)


def test_a_librarys_warning_is_said_once_after_the_block(capfd) -> None:
    said: list[str] = []
    with warnings_held(said.append):
        for _ in range(3):
            _empty_filter()
        assert said == []
    assert len(said) == 1
    assert said[0].startswith(f"warning from transformers (UserWarning, 3 times): {MEL}")
    assert MEL not in capfd.readouterr().err  # nothing reached the terminal on its own


def test_warnings_are_said_when_the_block_fails() -> None:
    said: list[str] = []
    with pytest.raises(ZeroDivisionError), warnings_held(said.append):
        _empty_filter()
        _ = 1 / 0
    assert len(said) == 1 and MEL in said[0] and "times" not in said[0]
