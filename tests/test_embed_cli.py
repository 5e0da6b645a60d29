"""``augtool embed`` (issue 17, defects 11 and 13): the output is a ``.npy`` name or a
one-line error before any work, and an interrupted run says what it kept and, when run
again, how much it resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import EXAMPLES, read_jsonl

from augtool.core.encoders.sentence_transformers import SentenceTransformerEncoder

SOURCE = EXAMPLES / "intents-unlabeled.jsonl"


@pytest.mark.parametrize("name", ["e.jsonl", "e.json", "e", "e.npz", "e.npy.txt"])
def test_output_must_be_an_npy_name(name: str, tmp_path: Path) -> None:
    out = tmp_path / name
    # Checked first: before the (missing) encoder or the (missing) input are looked at.
    result = run_cli("embed", tmp_path / "missing.jsonl", "-o", out, "--encoder", "./nope")
    assert_one_line_error(result, f"--output {out}: embed writes a NumPy array; use a .npy name")
    assert result.exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_python_api_refuses_a_non_npy_name_too(tmp_path: Path) -> None:
    from augtool.core.encoders.job import EmbedConfig, embed_records
    from augtool.errors import OptionError

    with pytest.raises(OptionError, match="use a .npy name"):
        embed_records([], tmp_path / "e.jsonl", EmbedConfig())


class Interrupt:
    """Patch ``encode_batch`` to raise KeyboardInterrupt on call number ``at`` (the
    first call is the one-text probe that loads the model); records batch sizes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, at: int | None) -> None:
        self.calls: list[int] = []
        self.at = at
        original = SentenceTransformerEncoder.encode_batch

        def encode_batch(encoder, texts):
            self.calls.append(len(texts))
            if self.at is not None and len(self.calls) == self.at:
                raise KeyboardInterrupt
            return original(encoder, texts)

        monkeypatch.setattr(SentenceTransformerEncoder, "encode_batch", encode_batch)


def _stderr_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_interrupted_embed_says_what_is_kept_and_resumes_from_the_cache(
    tiny_st: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "u.npy"
    args = ("embed", SOURCE, "-o", out, "--encoder", tiny_st, "--batch-size", 8)
    texts = [row["text"] for row in read_jsonl(SOURCE)]
    total = len(texts)

    with monkeypatch.context() as patch:
        Interrupt(patch, at=3)  # the probe, one batch of 8, then Ctrl-C
        stopped = run_cli(*args)
    assert stopped.exit_code == 130
    line = _stderr_lines(stopped)[-1]
    assert line.startswith("error: interrupted after embedding ")
    done = int(line.split("interrupted after embedding ")[1].split()[0])
    assert 0 < done < total
    assert f"of {total} rows; they are kept in the embedding cache" in line
    assert f"{out}.partial marks the unfinished run" in line
    assert "rerun the same command to resume" in line
    assert "Traceback" not in stopped.stderr + stopped.stdout
    assert not out.exists() and (tmp_path / "u.npy.partial").exists()

    with monkeypatch.context() as patch:
        counted = Interrupt(patch, at=None)
        resumed = run_cli(*args)
    assert resumed.exit_code == 0, resumed.stderr
    note = [x for x in _stderr_lines(resumed) if x.startswith("resuming")]
    assert note == [
        f"resuming an interrupted run ({out}.partial): {done} of {total} rows are already "
        f"embedded (in the embedding cache), {total - done} to go"
    ]
    # Only what the interrupted run did not finish is embedded again.
    distinct_done = len({t for t in texts}) - sum(counted.calls)
    assert 0 < distinct_done <= done and sum(counted.calls) < len(set(texts))
    assert not (tmp_path / "u.npy.partial").exists()
    assert json.loads((tmp_path / "u.npy.ids.json").read_text()) == [
        row["id"] for row in read_jsonl(SOURCE)
    ]

    fresh = tmp_path / "fresh.npy"
    again = run_cli("embed", SOURCE, "-o", fresh, "--encoder", tiny_st, "--no-cache")
    assert again.exit_code == 0, again.stderr
    assert not any(x.startswith("resuming") for x in _stderr_lines(again))
    np.testing.assert_allclose(np.load(out), np.load(fresh), atol=1e-6)


def test_interrupted_embed_without_cache_says_nothing_is_kept(
    tiny_st: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "u.npy"
    args = ("embed", SOURCE, "-o", out, "--encoder", tiny_st, "--batch-size", 8, "--no-cache")
    with monkeypatch.context() as patch:
        Interrupt(patch, at=3)
        stopped = run_cli(*args)
    assert stopped.exit_code == 130
    line = _stderr_lines(stopped)[-1]
    assert "with the cache off (--no-cache) nothing is kept" in line
    assert "rerunning the same command starts over" in line
    assert not (tmp_path / "u.npy.partial").exists() and not out.exists()

    # A partial file left by a cached run, rerun with --no-cache: says it starts over.
    (tmp_path / "u.npy.partial").write_bytes(b"")
    rerun = run_cli(*args)
    assert rerun.exit_code == 0, rerun.stderr
    assert any(
        "with the cache off (--no-cache) nothing was kept: embedding all 40 rows again" in x
        for x in _stderr_lines(rerun)
    )
    assert np.load(out).shape == (40, 32)
