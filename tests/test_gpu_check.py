"""benchmarks/gpu_check.py --cpu-smoke: the GPU check's every step at toy sizes on the CPU, so
that the script is known to work before a GPU is lent for it.

It runs in a private network namespace (loopback only) where the machine allows one, so that
the embedded Ray of its study step talks over 127.0.0.1 alone.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}


def loopback_only() -> list[str]:
    """A command prefix running in a new network namespace with only `lo` up, or [] where the
    machine cannot make one (not root, no unshare)."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        return []
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True)
    return ["unshare", "-n", "bash", "-c", 'ip link set lo up && exec "$@"', "netns"] if probe.returncode == 0 else []


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-check") / "out"
    cmd = [*loopback_only(), sys.executable, str(SCRIPT), "--cpu-smoke", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=REPO, timeout=900)
    return done, out


def steps(out: Path) -> dict:
    return {s["name"]: s for s in json.loads((out / "summary.json").read_text())["steps"]}


def test_cpu_smoke_runs_every_step_and_its_checks_pass(smoke):
    done, out = smoke
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "cpu-smoke" and summary["ok"] is True
    assert summary["machine"]["torch"] and summary["machine"]["device"].startswith("cpu")
    by_name = steps(out)
    assert list(by_name) == ["train", "resume", "study", "throughput"]
    for step in by_name.values():
        assert step["status"] == "ok", step
        assert step["seconds"] > 0
    # the table is printed too
    assert "normscope GPU check: cpu-smoke" in done.stdout and done.stdout.count(" ok ") == 4


def test_train_step_checked_both_architectures_and_eval_reproduces_the_trainer(smoke):
    _, out = smoke
    train = steps(out)["train"]["numbers"]
    assert sorted(train["runs"]) == ["perceptnet_gdn_v2", "vgg16_bn_v2"]
    for name in ("perceptnet_gdn_v2", "vgg16_bn_v2"):
        run = out / "train" / name
        trained = json.loads((run / "results.json").read_text())["test"]
        inspected = train[f"{name} inspected"]
        assert inspected["eval_max_gap"] <= 1e-5  # on the CPU eval recomputes the same numbers
        assert inspected["features_shapes"]["x_test"] == [trained["n"], 100]  # classifier: 100 classes
        assert inspected["attribution_numbers"] > 10
        assert (run / "attribution.json").is_file() and (out / "train" / f"{name}-features.npz").is_file()
        assert train["runs"][name]["test_accuracy"] == round(trained["accuracy"], 4)


def test_resumed_run_equals_the_uninterrupted_one_bit_for_bit(smoke):
    _, out = smoke
    resume = steps(out)["resume"]["numbers"]
    assert resume["max_abs_difference"] == 0.0 and resume["tolerance"] == "bit-exact"
    assert resume["epoch2_movement_l2"] > 0  # epoch 2 changed the weights: the comparison can fail
    assert resume["tensors"] > 10
    results = json.loads((out / "resume" / "killed" / "results.json").read_text())
    assert results["epochs_done"] == 2 and results["status"] == "completed"


def test_study_step_ran_each_engine_on_every_run(smoke):
    _, out = smoke
    study = steps(out)["study"]
    assert study["numbers"]["parallel 1"]["runs"] == 2 and study["numbers"]["parallel 1"]["how"] == "1 at a time"
    assert study["numbers"]["parallel 2"]["how"] == "2 at a time"
    try:
        import ray  # noqa: F401

        assert study["numbers"]["ray --cpus-per-run 1"]["runs"] == 2
    except ImportError:
        assert "Ray skipped" in study["reason"]


def test_throughput_step_measured_both_models(smoke):
    _, out = smoke
    step = steps(out)["throughput"]
    for name in ("vgg16_bn_v2", "perceptnet_gdn_v2"):
        row = step["numbers"][name]
        assert row["normscope_images_per_second"] > 0 and row["plain_images_per_second"] > 0
        assert row["ratio"] == pytest.approx(
            row["normscope_images_per_second"] / row["plain_images_per_second"], rel=0.05
        )
    assert "--compile skipped" in step["reason"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "train,speedd"], "error: --steps: unknown speedd; the steps are train, resume, study, throughput"),
        (["--out", "."], "is not empty"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(args, message):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu-smoke", *args], capture_output=True, text=True, env=ENV, cwd=REPO
    )
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def load_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_weight_comparison_fails_on_any_difference_on_cpu_and_beyond_the_tolerance_on_cuda(tmp_path):
    import torch

    gc = load_script()
    w1 = {"a": torch.zeros(3), "b": torch.zeros(2, 2)}  # epoch 1
    w2 = {"a": torch.tensor([3.0, 0.0, 0.0]), "b": torch.tensor([[0.0, 4.0], [0.0, 0.0]])}  # moved by L2 5
    near = {"a": w2["a"].clone(), "b": w2["b"] + torch.tensor([[0.0, 0.0], [0.2, 0.0]])}  # 0.2 away: 4 %
    far = {"a": w2["a"] + torch.tensor([0.0, 0.3, 0.0]), "b": w2["b"]}  # 0.3 away: 6 %
    for name, model, epoch in (("e1", w1, 1), ("whole", w2, 2), ("near", near, 2), ("far", far, 2)):
        torch.save({"model": model, "epoch": epoch}, tmp_path / f"{name}.pt")
    same = gc.compare_weights(tmp_path / "whole.pt", tmp_path / "whole.pt", tmp_path / "e1.pt", None)
    assert same["max_abs_difference"] == 0.0 and same["epoch2_movement_l2"] == pytest.approx(5.0)
    with pytest.raises(gc.StepFailed, match=r"max \|diff\| 0.2"):
        gc.compare_weights(tmp_path / "near.pt", tmp_path / "whole.pt", tmp_path / "e1.pt", None)
    near_numbers = gc.compare_weights(tmp_path / "near.pt", tmp_path / "whole.pt", tmp_path / "e1.pt", 0.05)
    assert near_numbers["relative_l2_difference"] == pytest.approx(0.04)
    assert near_numbers["max_abs_difference"] == pytest.approx(0.2)
    with pytest.raises(gc.StepFailed, match=r"0.06 of an epoch's movement away \(tolerance 0.05\)"):
        gc.compare_weights(tmp_path / "far.pt", tmp_path / "whole.pt", tmp_path / "e1.pt", 0.05)
    with pytest.raises(gc.StepFailed, match="killed after epoch 2, not 1"):  # killed too late
        gc.compare_weights(tmp_path / "near.pt", tmp_path / "whole.pt", tmp_path / "far.pt", None)


def test_non_finite_numbers_anywhere_in_a_result_are_named():
    gc = load_script()
    assert gc.finite_numbers({"a": [1, 2.5, {"b": 3}], "ok": True, "s": "x"}, "r") == 3
    with pytest.raises(gc.StepFailed, match=r"r\.a\[1\]\.b is nan"):
        gc.finite_numbers({"a": [1, {"b": float("nan")}]}, "r")
