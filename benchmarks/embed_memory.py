"""Peak memory of ``augtool embed`` over the 35k-sentence unlabeled corpus.

Target (issue #2): peak RSS under 2 GiB beyond the model. The peer measured in the same
run is a process that only loads the model and embeds one sentence; the difference of
the two peaks is what embedding the corpus costs.

    python benchmarks/embed_memory.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import dataset, offline, save_result

MODEL_ONLY = """
import sys
from augtool.core.encoders import load_encoder
load_encoder(cache=False).encode(["one sentence"])
import resource
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

FULL = """
import sys
from augtool.cli.app import main
sys.argv = ["augtool"] + sys.argv[1:]
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
import resource
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_kib(code: str, *args: str, env: dict[str, str]) -> tuple[int, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, check=True, capture_output=True, text=True
    )
    return int(done.stdout.strip().splitlines()[-1]), time.perf_counter() - start


def main() -> None:
    offline()
    corpus = dataset("unlabeled", "wiki_sentences.jsonl")
    env = {**os.environ, "AUGTOOL_CACHE_DIR": tempfile.mkdtemp(prefix="augtool-bench-mem-")}
    baseline, _ = peak_kib(MODEL_ONLY, env=env)
    with tempfile.TemporaryDirectory() as out_dir:
        out = str(Path(out_dir) / "wiki.npy")
        full, seconds = peak_kib(FULL, "embed", str(corpus), "-o", out, env=env)
        rows = sum(1 for _ in corpus.open(encoding="utf-8"))
    gib = 1024 * 1024
    print(f"corpus: {rows} sentences ({corpus.name}); embed took {seconds:.1f} s")
    print(f"peak RSS, model only (peer)   : {baseline / gib:6.2f} GiB")
    print(f"peak RSS, augtool embed       : {full / gib:6.2f} GiB")
    print(f"beyond the model              : {(full - baseline) / gib:6.2f} GiB  (target < 2 GiB)")
    save_result(
        "embed_memory",
        {
            "sentences": rows,
            "seconds": round(seconds, 1),
            "peak_gib_model_only": round(baseline / gib, 2),
            "peak_gib_embed": round(full / gib, 2),
            "beyond_model_gib": round((full - baseline) / gib, 2),
            "target_beyond_model_gib": 2.0,
        },
        {"dataset": "unlabeled/wiki_sentences.jsonl"},
    )


if __name__ == "__main__":
    main()
