"""Peak host memory while loading a ~1B-parameter Llama in bfloat16.

Target (issue 18): loading through augtool's loader (``augtool.core.pretrained``: the
dtype passed to ``from_pretrained``, ``low_cpu_mem_usage``) peaks under 1.3x the model's
bfloat16 size. The peers, measured in the same run on the same checkpoint:

- ``no-dtype``: ``from_pretrained(path)`` then ``.to(bfloat16)``, what augtool did before
  (transformers 5.x reads the checkpoint's dtype, so this is the 5.x default);
- ``float32-first``: ``from_pretrained(path, dtype=float32)`` then ``.to(bfloat16)``, what
  the same code does under transformers 4.x, which the dependency pin allows.

Each arm loads in a fresh process; the figure is the peak resident set size minus the
resident size just before the load (torch and transformers already imported). The model
has TinyLlama-1.1B's shapes and random weights, written once as bfloat16 safetensors.

    python benchmarks/load_memory.py [--work DIR] [--layers 22]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import offline, save_result

SHAPE = {
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "vocab_size": 32000,
}
ARMS = ("augtool", "no-dtype", "float32-first")


def build(folder: Path, layers: int) -> dict[str, float]:
    """Random bfloat16 weights with TinyLlama's shapes, saved as safetensors."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**SHAPE, num_hidden_layers=layers, dtype="bfloat16")
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    model = LlamaForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    parameters = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder)
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    return {"parameters": parameters, "checkpoint_mb": size / 2**20}


def measure(arm: str, folder: str) -> dict[str, float]:
    """Run in a child process: load one way, report resident memory (MiB)."""
    import resource

    import torch
    from transformers import AutoModelForCausalLM

    from augtool.core.pretrained import load_pretrained, plan_load

    def rss_mb() -> float:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20

    before = rss_mb()
    started = time.perf_counter()
    if arm == "augtool":
        model = load_pretrained(AutoModelForCausalLM, folder, plan_load("cpu", "bfloat16"))
    elif arm == "no-dtype":
        model = AutoModelForCausalLM.from_pretrained(folder)
        model.to(dtype=torch.bfloat16)
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        model.to(dtype=torch.bfloat16)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dtypes = sorted({str(p.dtype) for p in model.parameters()})
    return {
        "before_mb": before,
        "peak_mb": peak,
        "peak_growth_mb": peak - before,
        "after_mb": rss_mb(),
        "seconds": seconds,
        "dtypes": dtypes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="keep the checkpoint here")
    parser.add_argument("--layers", type=int, default=22)
    parser.add_argument("--measure", nargs=2, metavar=("ARM", "FOLDER"), help=argparse.SUPPRESS)
    parser.add_argument("--no-save", action="store_true", help="print, do not write the JSON")
    args = parser.parse_args()
    offline()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="load-memory-"))
    folder = work / "llama-1b"
    if not (folder / "config.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        shape = build(folder, args.layers)
        (work / "shape.json").write_text(json.dumps(shape), encoding="utf-8")
    shape = json.loads((work / "shape.json").read_text(encoding="utf-8"))
    bf16_mb = shape["parameters"] * 2 / 2**20
    figures: dict[str, object] = {
        "parameters": shape["parameters"],
        "bf16_size_mb": round(bf16_mb, 1),
        "target_ratio": 1.3,
    }
    for arm in ARMS:
        command = [sys.executable, __file__, "--measure", arm, str(folder)]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True)
                            .stdout.strip().splitlines()[-1])  # fmt: skip
        ratio = result["peak_growth_mb"] / bf16_mb
        figures[arm] = {**result, "ratio": round(ratio, 3)}
        print(f"{arm:>14}: peak +{result['peak_growth_mb']:,.0f} MiB = {ratio:.2f}x bf16 size "
              f"({result['seconds']:.1f} s, {', '.join(result['dtypes'])})")  # fmt: skip
    settings = {"shape": {**SHAPE, "num_hidden_layers": args.layers}, "arms": list(ARMS)}
    if not args.no_save:
        save_result("load_memory", figures, settings)


if __name__ == "__main__":
    main()
