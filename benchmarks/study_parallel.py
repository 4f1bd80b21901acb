"""One study, run with `--parallel 1` and with `--parallel auto`: wall time of each.

The local engine's `--parallel auto` chooses how many runs share the machine from its cores
and the model's size (normscope.study.engines.auto_parallel). This runs the same small study
(PerceptNet, InstanceNorm with and without reuse, synthetic CIFAR-sized data) twice from
scratch, each in a fresh study directory, and prints one JSON object: the wall time of each,
the parallelism `auto` chose, and the speed-up.

    python benchmarks/study_parallel.py                       # 2 variants × 4 seeds, 2 epochs
    python benchmarks/study_parallel.py --seeds 6 --epochs 3 --subset 2000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_study(parallel: str, args, out: Path) -> float:
    command = [
        sys.executable, "-m", "normscope", "study", str(ROOT / "examples" / "perceptnet.yml"),
        "--variants", "in,in_v2", "--data", f"synthetic:{args.images}", "--seeds", str(args.seeds),
        "--epochs", str(args.epochs), "--subset", str(args.subset), "--test-subset", "200",
        "--no-attribute", "--parallel", parallel, "--out", str(out),
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ | {"PYTHONPATH": str(ROOT / "src")})
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"study with --parallel {parallel} failed:\n{done.stderr}")
    line = next(x for x in done.stdout.splitlines() if "to run (" in x)
    return seconds, line.rsplit("(", 1)[-1].rstrip(")")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--subset", type=int, default=1000)
    p.add_argument("--images", type=int, default=1500)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        serial, how_serial = one_study("1", args, Path(tmp) / "one")
        auto, how_auto = one_study("auto", args, Path(tmp) / "auto")
    result = {
        "runs": 2 * args.seeds,
        "epochs": args.epochs,
        "training_images": args.subset,
        "parallel_1_seconds": round(serial, 1),
        "parallel_auto_seconds": round(auto, 1),
        "auto_chose": how_auto,
        "speedup": round(serial / auto, 2),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }
    print(json.dumps(result, indent=2))
    print(f"--parallel 1: {serial:.1f} s ({how_serial}); auto: {auto:.1f} s ({how_auto})", file=sys.stderr)


if __name__ == "__main__":
    main()
