"""The steps of benchmarks/gpu_check.py: each runs normscope's commands in subprocesses
through a `Runner` and records its numbers in a `Step`, raising `StepFailed` when a check fails."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpu_check import Plan

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from normscope.norms import parse_variant  # noqa: E402  (no torch)

ARCHS = {"perceptnet": ROOT / "examples" / "perceptnet.yml", "vgg16": ROOT / "examples" / "vgg16.yml"}
INSPECTED = {"perceptnet": "gdn_v2", "vgg16": "bn_v2"}  # eval, attribute, features on these runs


@dataclass
class Step:
    name: str
    status: str = "ok"  # ok | failed | skipped
    reason: str = ""
    seconds: float = 0.0
    numbers: dict = field(default_factory=dict)

    def fail(self, why: str) -> None:
        self.status = "failed"
        self.reason = f"{self.reason}; {why}" if self.reason else why


class StepFailed(Exception):
    pass


class Runner:
    """Runs commands with a timeout, each one's output in logs/NAME.log under --out."""

    def __init__(self, out: Path, plan: Plan):
        self.out, self.plan = out, plan
        (out / "logs").mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
        env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        env.setdefault("RAY_AUTH_MODE", "disabled")
        if plan.device == "cpu":
            env.setdefault("OMP_NUM_THREADS", "1")
        self.env = env

    def popen(self, name: str, args: list[str]) -> subprocess.Popen:
        with open(self.out / "logs" / f"{name}.log", "w") as log:  # the child keeps its own descriptor
            return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.out)

    def run(self, name: str, args: list[str], timeout: int | None = None) -> tuple[str, float]:
        """The command's output; StepFailed with its last line when it fails or times out."""
        start = time.perf_counter()
        proc = self.popen(name, args)
        try:
            code = proc.wait(timeout=timeout or self.plan.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise StepFailed(f"{name}: timed out after {timeout or self.plan.timeout} s") from None
        text = (self.out / "logs" / f"{name}.log").read_text(errors="replace")
        if code != 0:
            last = [line for line in text.splitlines() if line.strip()][-1:] or ["(no output)"]
            raise StepFailed(f"{name}: exit status {code}: {last[0].strip()[:300]}")
        return text, time.perf_counter() - start

    def many(self, commands: dict[str, list[str]]) -> dict[str, tuple[str, float]]:
        with ThreadPoolExecutor(self.plan.jobs) as pool:
            futures = {name: pool.submit(self.run, name, args) for name, args in commands.items()}
        return {name: f.result() for name, f in futures.items()}  # the first failure raises


def ns(*args: str) -> list[str]:
    return [sys.executable, "-m", "normscope", *args]


def variant_options(variant: str) -> list[str]:
    norm, reuse = parse_variant(variant)
    return ["--norm", norm, "--reuse" if reuse else "--no-reuse"]


def finite_numbers(obj, where: str) -> int:
    """How many numbers `obj` (parsed JSON) holds; StepFailed at the first non-finite one."""
    if isinstance(obj, dict):
        return sum(finite_numbers(v, f"{where}.{k}") for k, v in obj.items())
    if isinstance(obj, list):
        return sum(finite_numbers(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if isinstance(obj, float) and not math.isfinite(obj):
        raise StepFailed(f"{where} is {obj}")
    return int(isinstance(obj, (int, float)) and not isinstance(obj, bool))


def train_args(plan: Plan, arch: str, variant: str, out: Path, name: str, data: str, epochs: int) -> list[str]:
    return ns(
        "train", str(ARCHS[arch]), *variant_options(variant), "--data", data, "--fit-data",
        "--epochs", str(epochs), "--batch-size", str(plan.batch), "--out", str(out), "--name", name,
        "--device", plan.device, "--progress", "none",
    )  # fmt: skip


def check_run(run: Path, device: str) -> dict:
    """A finished run's results: completed, finite, on `device`, with the device's defaults."""
    results = json.loads((run / "results.json").read_text())
    config = json.loads((run / "config.json").read_text())
    if results["status"] != "completed":
        raise StepFailed(f"{run.name}: status {results['status']}: {results.get('message')}")
    finite_numbers(results["test"], f"{run.name} results.json test")
    for row in (run / "metrics.csv").read_text().splitlines()[1:]:
        for value in row.split(","):
            if value and not math.isfinite(float(value)):
                raise StepFailed(f"{run.name}/metrics.csv has {value}")
    if not str(results["device"]).startswith(device):
        raise StepFailed(f"{run.name} trained on {results['device']}, not {device}")
    if device == "cuda" and not (config["amp"] and config["channels_last"]):
        raise StepFailed(
            f"{run.name}: CUDA defaults not in effect (amp {config['amp']}, channels_last {config['channels_last']})"
        )
    return {
        "test_accuracy": round(results["test"]["accuracy"], 4),
        "test_loss": round(results["test"]["loss"], 4),
        "train_images_per_second": round(results["train_images_per_second"]),
        "amp": config["amp"],
        "channels_last": config["channels_last"],
    }


def inspections(plan: Plan, run: Path) -> dict[str, list[str]]:
    """The commands that inspect one run: eval, attribute, features."""
    name, features = run.name, run.parent / f"{run.name}-features.npz"
    return {
        f"{name}-eval": ns("eval", str(run), "--json", "--device", plan.device),
        f"{name}-attribute": ns("attribute", str(run), *plan.attribute, "--device", plan.device),
        f"{name}-features": ns("features", str(run), "--layer", "classifier", "--out", str(features),
                               "--device", plan.device),
    }  # fmt: skip


def check_inspection(plan: Plan, run: Path, outputs: dict[str, tuple[str, float]]) -> dict:
    """eval against results.json "test", attribution.json and the features finite."""
    name, features = run.name, run.parent / f"{run.name}-features.npz"
    text = outputs[f"{name}-eval"][0]
    evaluated = json.loads(text[text.index("{") : text.rindex("}") + 1])
    trained = json.loads((run / "results.json").read_text())["test"]
    finite_numbers(evaluated, f"{name} eval")
    gaps = {k: abs(evaluated[k] - trained[k]) for k in plan.eval_tol}
    for k, gap in gaps.items():
        if gap > plan.eval_tol[k]:
            raise StepFailed(
                f"{name}: eval {k} {evaluated[k]:.6g} vs trainer's {trained[k]:.6g} (tolerance {plan.eval_tol[k]})"
            )
    n_attr = finite_numbers(json.loads((run / "attribution.json").read_text()), f"{name} attribution.json")
    import numpy as np

    with np.load(features) as f:
        shapes = {k: list(f[k].shape) for k in ("x_train", "x_test")}
        if not all(np.isfinite(f[k]).all() for k in ("x_train", "x_val", "x_test")):
            raise StepFailed(f"{features.name} holds non-finite features")
        if len(f["x_test"]) != trained["n"] or len(f["y_test"]) != trained["n"]:
            raise StepFailed(f"{features.name}: {len(f['x_test'])} test rows, the run has {trained['n']}")
    return {
        "eval_max_gap": max(gaps.values()),
        "attribution_numbers": n_attr,
        "features_shapes": shapes,
        "seconds": {k.removeprefix(f"{name}-"): round(s, 1) for k, (_, s) in outputs.items() if k.startswith(name)},
    }


def step_train(runner: Runner, step: Step) -> None:
    plan, out = runner.plan, runner.out / "train"
    variants = {arch: plan.variants or (INSPECTED[arch],) for arch in ARCHS}
    commands = {
        f"{arch}_{v}": train_args(plan, arch, v, out, f"{arch}_{v}", plan.data, 1)
        for arch in ARCHS
        for v in variants[arch]
    }
    seconds = runner.many(commands)
    step.numbers["data"] = plan.data
    step.numbers["runs"] = {name: {**check_run(out / name, plan.device), "wall_seconds": round(s, 1)}
                            for name, (_, s) in seconds.items()}  # fmt: skip
    step.numbers["eval_tolerance"] = plan.eval_tol
    inspected = [out / f"{arch}_{variant}" for arch, variant in INSPECTED.items()]
    outputs = runner.many({k: v for run in inspected for k, v in inspections(plan, run).items()})
    for run in inspected:
        step.numbers[f"{run.name} inspected"] = check_inspection(plan, run, outputs)


def step_resume(runner: Runner, step: Step) -> None:
    plan, out = runner.plan, runner.out / "resume"
    arch, variant = "vgg16", "bn_v2"  # BatchNorm buffers, dropout masks, Adam state: all must be restored
    whole = runner.popen("resume-uninterrupted", train_args(plan, arch, variant, out, "whole", plan.resume_data, 2))
    killed = runner.popen("resume-killed", train_args(plan, arch, variant, out, "killed", plan.resume_data, 2))
    run, epoch1 = out / "killed", out / "epoch1.pt"
    try:
        kill_after_first_checkpoint(killed, run, plan.timeout)
        shutil.copy(run / "last.pt", epoch1)
        if whole.wait(timeout=plan.timeout) != 0:
            raise StepFailed(f"the uninterrupted run failed: see logs/resume-uninterrupted.log under {runner.out}")
    except subprocess.TimeoutExpired:
        raise StepFailed(f"the uninterrupted run took over {plan.timeout} s") from None
    finally:
        for proc in (whole, killed):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    runner.run("resume-resumed", ns("train", "--resume", str(run), "--device", plan.device, "--progress", "none"))
    check_run(run, plan.device)
    results = json.loads((run / "results.json").read_text())
    if results["epochs_done"] != 2:
        raise StepFailed(f"the resumed run did {results['epochs_done']} epochs, not 2")
    step.numbers.update(compare_weights(run / "last.pt", out / "whole" / "last.pt", epoch1, plan.resume_tol))


def kill_after_first_checkpoint(proc: subprocess.Popen, run: Path, timeout: int) -> None:
    """SIGKILL the training process `proc` as soon as its run has written epoch 1's checkpoint."""
    deadline = time.time() + timeout
    while not ((run / "last.pt").exists() and "\n1," in _read(run / "metrics.csv")):
        if proc.poll() is not None:
            raise StepFailed(f"the run to kill exited ({proc.returncode}) before its first checkpoint was seen")
        if time.time() > deadline:
            raise StepFailed(f"no checkpoint within {timeout} s")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def compare_weights(resumed: Path, whole: Path, epoch1: Path, tolerance: float | None) -> dict:
    import torch

    load = lambda p: torch.load(p, map_location="cpu", weights_only=True)  # noqa: E731
    first = load(epoch1)
    if first["epoch"] != 1:
        raise StepFailed(f"the run was killed after epoch {first['epoch']}, not 1")
    a, b, e1 = load(resumed)["model"], load(whole)["model"], first["model"]
    if a.keys() != b.keys():
        raise StepFailed("the resumed and the uninterrupted run hold different tensors")
    diff = moved = max_abs = 0.0
    for k in a:
        x, y, z = (t.double() for t in (a[k], b[k], e1[k]))
        max_abs = max(max_abs, (x - y).abs().max().item() if x.numel() else 0.0)
        diff += ((x - y) ** 2).sum().item()
        moved += ((y - z) ** 2).sum().item()
    relative = math.sqrt(diff) / math.sqrt(moved) if moved else math.inf
    numbers = {"tensors": len(a), "max_abs_difference": max_abs, "relative_l2_difference": relative,
               "epoch2_movement_l2": math.sqrt(moved),
               "tolerance": "bit-exact" if tolerance is None else f"relative L2 <= {tolerance}"}  # fmt: skip
    if tolerance is None and max_abs != 0.0:
        raise StepFailed(f"resumed weights differ from the uninterrupted run's (max |diff| {max_abs:.3g})")
    if tolerance is not None and not relative <= tolerance:
        raise StepFailed(f"resumed weights {relative:.3g} of an epoch's movement away (tolerance {tolerance})")
    return numbers


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def one_study(runner: Runner, name: str, engine: list[str]) -> dict:
    plan, out = runner.plan, runner.out / "study" / name
    args = ns(
        "study", str(ARCHS["vgg16"]), "--variants", plan.study_variants, "--seeds", str(plan.study_seeds),
        "--epochs", "1", "--data", plan.study_data, "--batch-size", str(plan.batch), "--no-attribute",
        "--device", plan.device, "--out", str(out), *engine,
    )  # fmt: skip
    text, seconds = runner.run(f"study-{name}", args, timeout=2 * plan.timeout)
    study = json.loads(next(out.glob("*/study.json")).read_text())
    bad = [r for r in study["runs"] if r["result"] != "completed"]
    if bad:
        raise StepFailed(f"study {name}: {len(bad)} runs not completed ({bad[0]['variant']} s{bad[0]['seed']})")
    for r in study["runs"]:
        check_run(next(out.glob("*")) / r["run_dir"], plan.device)
    how = next((line.rsplit("(", 1)[-1].rstrip(")") for line in text.splitlines() if "to run (" in line), "")
    return {"wall_seconds": round(seconds, 1), "runs": len(study["runs"]), "how": how}


def ray_missing() -> str | None:
    try:
        import ray  # noqa: F401
    except ImportError:
        return "Ray is not installed (pip install 'normscope[ray]')"
    return None


def step_study(runner: Runner, step: Step) -> None:
    plan = runner.plan
    serial = one_study(runner, "one-at-a-time", ["--parallel", "1"])
    step.numbers["parallel 1"] = serial
    packed = one_study(runner, "local", ["--parallel", plan.parallel])
    packed["speedup"] = round(serial["wall_seconds"] / packed["wall_seconds"], 2)
    step.numbers[f"parallel {plan.parallel}"] = packed
    missing = ray_missing()
    if missing:
        step.reason = f"Ray skipped: {missing}"
        return
    ray = one_study(runner, "ray", ["--engine", "ray", *plan.ray])
    ray["speedup"] = round(serial["wall_seconds"] / ray["wall_seconds"], 2)
    step.numbers["ray " + " ".join(plan.ray)] = ray


def step_throughput(runner: Runner, step: Step) -> None:
    plan = runner.plan
    script = [
        sys.executable,
        str(ROOT / "benchmarks" / "train_throughput.py"),
        *plan.throughput,
        "--device",
        plan.device,
    ]
    models = {"vgg16_bn_v2": ["--model", str(ARCHS["vgg16"]), "--norm", "bn", "--reuse"],
              "perceptnet_gdn_v2": ["--model", str(ARCHS["perceptnet"]), "--norm", "gdn", "--reuse"]}  # fmt: skip
    for name, model in models.items():
        text, seconds = runner.run(f"throughput-{name}", [*script, *model], timeout=2 * plan.timeout)
        r = json.loads(text[text.index("{") : text.rindex("}") + 1])
        row = {
            "normscope_images_per_second": round(r["normscope"]["images_per_second"]),
            "plain_images_per_second": round(r["plain"]["images_per_second"]),
            "ratio": round(r["ratio"], 2),
            "input_pipelines_ratio": round(r["data_pipeline_only"]["ratio"], 2),
            "wall_seconds": round(seconds, 1),
        }
        if plan.compile:
            compiled = [*script, *model, "--compile", "--only", "normscope"]
            text, seconds = runner.run(f"throughput-{name}-compile", compiled, timeout=2 * plan.timeout)
            c = json.loads(text[text.index("{") : text.rindex("}") + 1])["normscope"]
            row["compiled_images_per_second"] = round(c["images_per_second"])
            row["compiled_ratio"] = round(c["images_per_second"] / r["plain"]["images_per_second"], 2)
            row["compile_wall_seconds"] = round(seconds, 1)
        finite_numbers(row, name)
        if not min(v for k, v in row.items() if k.endswith("per_second")) > 0:
            raise StepFailed(f"{name}: a rate is not positive")
        step.numbers[name] = row
    if not plan.compile:
        step.reason = "--compile skipped on --cpu-smoke (torch.compile takes minutes on 2 CPU cores)"
