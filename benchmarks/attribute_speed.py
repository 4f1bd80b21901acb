"""Attribution speed: `normscope attribute` on a study model, CPU by default.

Trains a run directory of the model for one epoch on a synthetic CIFAR-sized data set
(the weights do not change the cost), then times, over ``--repeat`` calls:

- ``attribute_run``: loading the run (checkpoint + data), the forward passes of the
  attributed test images and of the training images for the baseline, Integrated
  Gradients (Captum), the logit decomposition, permutation (5 repeats) and ablation of
  every group, norm layer and total, the per-class breakdown, and writing
  attribution.json, attribution.png and attribution_per_class.csv;
- the command line end to end (``normscope attribute RUN --samples N --by-class``), in a
  fresh process (Python start-up and imports included).

Prints one JSON object and a summary line on stderr.

    python benchmarks/attribute_speed.py                              # vgg16_in_v2, 1000 images
    python benchmarks/attribute_speed.py --model examples/perceptnet_gdn_v2.yml --samples 2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from normscope.analysis import attribute_run
from normscope.train import train

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "examples" / "vgg16_in_v2.yml"))
    ap.add_argument("--samples", type=int, default=1000, help="test images attributed")
    ap.add_argument("--baseline-samples", type=int, default=1000, help="training images for the baseline")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--repeat", type=int, default=2, help="timed attribute_run calls")
    ap.add_argument("--no-cli", action="store_true", help="skip the command-line timing")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        data = (
            f"synthetic:train={max(args.baseline_samples, 1000) + 200},test={args.samples},"
            "classes=100,size=32,channels=3"
        )
        t = time.perf_counter()
        run_dir = train(
            args.model, data=data, out=tmp, name="bench", epochs=1, device=args.device, progress="none", fit_data=True
        )
        train_s = time.perf_counter() - t

        times, result = [], None
        for _ in range(args.repeat):
            t = time.perf_counter()
            result = attribute_run(
                run_dir,
                samples=args.samples,
                baseline_samples=args.baseline_samples,
                device=args.device,
                by_class=True,
                quiet=True,
            )
            times.append(time.perf_counter() - t)

        cli_s = None
        if not args.no_cli:
            exe = Path(sys.executable).with_name("normscope")
            cmd = [
                str(exe) if exe.exists() else "normscope",
                "attribute",
                str(run_dir),
                "--samples",
                str(args.samples),
                "--baseline-samples",
                str(args.baseline_samples),
                "--by-class",
                "--device",
                args.device,
            ]
            env = dict(os.environ)
            if args.threads:
                env["OMP_NUM_THREADS"] = str(args.threads)
            t = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
            cli_s = time.perf_counter() - t

    out = {
        "model": Path(args.model).stem,
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "samples": result["samples"],
        "baseline_images": result["baseline_images"],
        "classifier_input": result["classifier_input_size"],
        "groups": len(result["groups"]),
        "attribute_run_seconds": [round(v, 2) for v in times],
        "attribute_run_best": round(min(times), 2),
        "phases_last_call": result["seconds"],
        "cli_seconds": None if cli_s is None else round(cli_s, 2),
        "train_one_epoch_seconds": round(train_s, 1),
        "torch": torch.__version__,
    }
    print(json.dumps(out, indent=2))
    print(
        f"{out['model']}: {out['samples']} images attributed in {out['attribute_run_best']} s "
        f"(attribute_run, best of {args.repeat}); command line {out['cli_seconds']} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
