"""One prepared GPU check: everything CUDA-specific in normscope, verified in one short run.

Drives normscope through its command line (``python -m normscope ...`` in subprocesses, the
working tree's sources first on PYTHONPATH), each step timed, everything written under --out:

1. train   every variant of both thesis architectures (examples/perceptnet.yml and
           examples/vgg16.yml) for 1 epoch on synthetic CIFAR-sized data (3x32x32, 100
           classes) with the device's defaults (on CUDA: bfloat16 autocast, channels_last,
           data on the device); then ``eval``, ``attribute`` and ``features`` on the reuse run
           of each: metrics finite, ``eval`` equal to results.json's "test" within a tolerance.
2. resume  a 2-epoch run SIGKILLed after its first checkpoint, then ``train --resume``, against
           an uninterrupted run of the same seed: final weights (last.pt "model") equal on the
           CPU; on CUDA within a stated tolerance (bfloat16 and non-deterministic kernels).
3. study   a 14-run study (7 variants x 2 seeds) of vgg16 with several runs packed: the local
           engine (``--parallel 7``) and embedded Ray (``--engine ray --gpus-per-run 1/7``),
           wall time against one run at a time (``--parallel 1``).
4. speed   benchmarks/train_throughput.py for vgg16_bn_v2 and perceptnet_gdn_v2 on a
           CIFAR-sized epoch (50 000 images), without and with ``--compile``.
5. a summary table on stdout and summary.json in --out; exit status 1 when a check failed.

The steps are in benchmarks/gpu_check_steps.py.

    python benchmarks/gpu_check.py                  # on a CUDA machine (sized for < 8 min on an H100; unmeasured)
    python benchmarks/gpu_check.py --cpu-smoke      # all steps at toy sizes on the CPU (~80 s of CPU time)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check_steps import (  # noqa: E402
    Runner,
    Step,
    StepFailed,
    compare_weights,
    finite_numbers,
    step_resume,
    step_study,
    step_throughput,
    step_train,
)

from normscope.norms import VARIANTS  # noqa: E402  (no torch; gpu_check_steps put src on the path)

__all__ = ["GPU", "SMOKE", "Plan", "StepFailed", "compare_weights", "finite_numbers", "main"]


@dataclass(frozen=True)
class Plan:
    """Sizes and tolerances of one mode (the GPU check or the CPU smoke test)."""

    device: str
    data: str  # steps 1 and 2
    batch: int
    variants: tuple[str, ...] | None  # per architecture in step 1; None: the inspected one only
    attribute: tuple[str, ...]  # `normscope attribute` options
    resume_data: str
    study_data: str
    study_variants: str
    study_seeds: int
    parallel: str
    ray: tuple[str, ...]  # `--engine ray` resource options
    throughput: tuple[str, ...]  # benchmarks/train_throughput.py options
    compile: bool
    jobs: int  # subprocesses at once in steps 1 and 2
    timeout: int  # seconds, per subprocess (twice that for a study or a throughput run)
    overlap: bool  # the study alongside the other steps (its timings then mean nothing)
    eval_tol: dict = field(default_factory=dict)  # metric -> absolute tolerance
    resume_tol: float | None = None  # None: bit-exact


GPU = Plan(
    device="cuda",
    data="synthetic:train=10000,test=2000,size=32,classes=100",
    batch=128,
    variants=VARIANTS,
    attribute=("--samples", "500"),
    resume_data="synthetic:train=10000,test=1000,size=32,classes=100",
    study_data="synthetic:train=5000,test=1000,size=32,classes=100",
    study_variants="all",
    study_seeds=2,
    parallel="7",
    ray=("--gpus-per-run", "1/7", "--cpus-per-run", "2"),
    throughput=("--n", "50000", "--epochs", "2", "--batch-size", "128"),
    compile=True,
    jobs=4,
    timeout=150,  # a study or a throughput run gets twice as long
    overlap=False,
    # eval and the trainer both run bfloat16 autocast: equal up to non-deterministic kernels
    # (10 of the 2000 test images may flip where two classes' bfloat16 logits nearly tie)
    eval_tol={"loss": 5e-3, "accuracy": 5e-3, "top5_accuracy": 5e-3},
    # relative: |resumed - uninterrupted| / |uninterrupted - epoch-1 weights| (L2 over all weights)
    resume_tol=0.05,
)
SMOKE = Plan(
    device="cpu",
    data="synthetic:train=64,test=32,size=16,classes=100",
    batch=16,
    variants=None,
    attribute=("--samples", "16", "--baseline-samples", "16", "--steps", "4", "--repeats", "1"),
    resume_data="synthetic:train=256,test=32,size=16,classes=100",
    study_data="synthetic:train=48,test=24,size=16,classes=10",
    study_variants="in_v2",
    study_seeds=2,
    parallel="2",
    ray=("--cpus-per-run", "1"),
    throughput=("--n", "64", "--size", "16", "--epochs", "2", "--batch-size", "16", "--workers", "0"),
    compile=False,
    jobs=2,
    timeout=120,
    overlap=True,
    eval_tol={"loss": 1e-5, "accuracy": 0.0, "top5_accuracy": 0.0},
    resume_tol=None,
)


STEPS = (
    ("train", "every variant, 1 epoch; eval, attribute, features", step_train),
    ("resume", "killed after epoch 1, resumed, against an uninterrupted run", step_resume),
    ("study", "variants x seeds packed: local engine and Ray against one at a time", step_study),
    ("throughput", "trainer against the plain PyTorch loop, with and without --compile", step_throughput),
)


def machine(plan: Plan) -> dict:
    import platform

    import torch

    info = {"torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count()}
    if plan.device == "cuda":
        info["device"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    else:
        info["device"] = f"cpu ({platform.machine()})"
    info["load_average"] = round(os.getloadavg()[0], 2)
    return info


def short(numbers: dict) -> str:
    """The headline numbers of a step, for the table."""
    parts = []
    for key, value in numbers.items():
        if isinstance(value, dict) and "speedup" in value:
            parts.append(f"{key}: {value['wall_seconds']} s ({value['speedup']}x)")
        elif isinstance(value, dict) and "wall_seconds" in value and "runs" in value:
            parts.append(f"{key}: {value['wall_seconds']} s")
        elif isinstance(value, dict) and "ratio" in value:
            extra = f", compiled {value['compiled_ratio']}x" if "compiled_ratio" in value else ""
            parts.append(f"{key}: {value['ratio']}x plain{extra}")
        elif key == "runs":
            accs = [r["test_accuracy"] for r in value.values()]
            parts.append(f"{len(value)} runs, test accuracy {min(accs):.3f}-{max(accs):.3f}")
        elif key.endswith("inspected"):
            parts.append(f"{key.split()[0]} eval gap {value['eval_max_gap']:.2g}")
        elif key in ("max_abs_difference", "relative_l2_difference"):
            parts.append(f"{key} {value:.3g}")
    return "; ".join(parts)


def print_table(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"normscope GPU check: {summary['mode']} on {summary['machine']['device']}, "
                  f"torch {summary['machine']['torch']}")  # fmt: skip
    for column in ("step", "status", "seconds", "numbers / reason"):
        table.add_column(column, overflow="fold")
    for s in summary["steps"]:
        colour = {"ok": "green", "failed": "red", "skipped": "yellow"}[s["status"]]
        text = "; ".join(filter(None, [short(s["numbers"]), s["reason"]]))
        table.add_row(s["name"], f"[{colour}]{s['status']}[/]", f"{s['seconds']:.1f}", text)
    Console(width=160).print(table)


def run_step(runner: Runner, name: str, what: str, run) -> dict:
    """One step, timed; its record for summary.json."""
    step = Step(name)
    if run is None:
        step.status, step.reason = "skipped", "not in --steps"
    else:
        t0 = time.perf_counter()
        try:
            run(runner, step)
        except StepFailed as exc:
            step.fail(str(exc))
        except Exception as exc:  # a bug in a step must not hide the others' results
            step.fail(f"{type(exc).__name__}: {exc}")
        step.seconds = round(time.perf_counter() - t0, 1)
    print(f"{name}: {step.status} ({step.seconds} s) {step.reason}", file=sys.stderr, flush=True)
    return {"what": what, **step.__dict__}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cpu-smoke", action="store_true", help="every step at toy sizes on the CPU")
    p.add_argument("--out", type=Path, default=None, help="output directory (default: ./gpu-check-DATE-TIME)")
    p.add_argument("--steps", default=",".join(s[0] for s in STEPS), help="comma-separated subset of the steps")
    args = p.parse_args(argv)
    plan = SMOKE if args.cpu_smoke else GPU
    unknown = set(args.steps.split(",")) - {s[0] for s in STEPS}
    if unknown:
        print(f"error: --steps: unknown {', '.join(sorted(unknown))}; the steps are {', '.join(s[0] for s in STEPS)}",
              file=sys.stderr)  # fmt: skip
        return 2
    if not args.cpu_smoke:
        import torch

        if not torch.cuda.is_available():
            print("error: no CUDA device here; run with --cpu-smoke for the CPU version", file=sys.stderr)
            return 2
    out = (args.out or Path(f"gpu-check-{datetime.datetime.now():%Y%m%d-%H%M%S}")).resolve()
    if out.exists() and any(out.iterdir()):
        print(f"error: --out {out} is not empty", file=sys.stderr)
        return 2
    runner = Runner(out, plan)
    chosen = args.steps.split(",")
    summary = {"mode": "cpu-smoke" if args.cpu_smoke else "gpu", "machine": machine(plan), "out": str(out),
               "plan": dataclasses.asdict(plan)}  # fmt: skip
    start = time.perf_counter()
    steps = [(name, what, run if name in chosen else None) for name, what, run in STEPS]
    if plan.overlap:  # the study in a second lane: the CPU smoke test fits in a minute
        with ThreadPoolExecutor(1) as lane:
            study = lane.submit(run_step, runner, *next(s for s in steps if s[0] == "study"))
            done = {s[0]: run_step(runner, *s) for s in steps if s[0] != "study"}
            done["study"] = study.result()
        if done["study"]["status"] == "ok" and "study" in chosen:
            note = "ran alongside the other steps: its wall times compare nothing"
            done["study"]["reason"] = "; ".join(filter(None, [done["study"]["reason"], note]))
        summary["steps"] = [done[name] for name, _, _ in STEPS]
    else:
        summary["steps"] = [run_step(runner, *s) for s in steps]
    summary["wall_seconds"] = round(time.perf_counter() - start, 1)
    summary["ok"] = all(s["status"] != "failed" for s in summary["steps"])
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_table(summary)
    print(f"{summary['wall_seconds']} s; summary: {out / 'summary.json'}; logs: {out / 'logs'}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
