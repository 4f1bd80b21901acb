"""Image folders (folder:PATH), streamed; ImageNet statistics; frozen layers that stay frozen;
a frozen backbone's cached features; `normscope svm`; both course transfer projects end to
end on small generated folders with random "pretrained" torchvision weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from fixtures import make_folder
from normscope.cli import app
from normscope.data import DataError
from normscope.data.batches import IMAGENET, prepare_data
from normscope.data.folder import TEST_FRACTION, ImageOptions
from normscope.train import load_run, train
from normscope.train.prepare import resolve_data_options
from normscope.train.settings import resolve_settings

EX = Path(__file__).resolve().parents[1] / "examples"
SRC = Path(__file__).resolve().parents[1] / "src"

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = """\
name: tiny
input: auto
classes: auto
norm: bn
layers:
  - conv: {{name: conv1, filters: 4, kernel: 3, activation: relu}}
  - norm: {{name: n1}}
  - maxpool: 2
  - flatten
  - dense: {{name: fc1, units: 8, activation: relu}}
  - dense: {{name: classifier}}
train:
  epochs: 1
  batch_size: 8
  image_size: {size}
{extra}"""


def tiny(tmp_path: Path, size: int = 16, extra: str = "", name: str = "tiny.yml") -> Path:
    path = tmp_path / name
    path.write_text(TINY.format(size=size, extra=extra))
    return path


# --------------------------------------------------------------------------- #
# the folder source
# --------------------------------------------------------------------------- #


def test_a_folder_without_test_and_val_is_split_seeded_and_stratified(tmp_path):
    root = make_folder(tmp_path / "f", per_class=(10, 10, 5))
    a = prepare_data(f"folder:{root}", validation=0.2, image=ImageOptions(16, 18), split_seed=0)
    b = prepare_data(f"folder:{root}", validation=0.2, image=ImageOptions(16, 18), split_seed=0)
    assert a.files == b.files and a.fingerprints == b.fingerprints
    assert np.bincount(a.y["test"]).tolist() == [2, 2, 1]  # TEST_FRACTION of each class
    assert TEST_FRACTION == 0.2 and a.sizes == {"train": 16, "test": 5, "val": 4}
    every = sorted(f for split in a.files.values() for f in split)
    assert every == sorted(str(p.relative_to(root)) for p in root.rglob("*.*"))
    xb, yb = next(iter(a.batches("test", 4)))
    assert xb.shape == (4, 3, 16, 16) and xb.dtype == torch.uint8 and yb.tolist() == a.y["test"][:4].tolist()
    # the colour that makes the class survives decoding, resizing and cropping
    assert (xb.float().mean((2, 3)).argmax(1) == yb).all()
    mean, std = a.train_stats()
    whole = torch.cat([x for x, _ in a.batches("train", 5)]).double() / 255
    assert np.allclose(mean, whole.mean((0, 2, 3)).numpy()) and np.allclose(std, whole.std((0, 2, 3), correction=0))


def test_val_and_test_folders_are_taken_as_they_are(tmp_path):
    root = make_folder(tmp_path / "f", per_class=(4, 4), splits=("train", "val", "test"))
    s = prepare_data(f"folder:{root}", validation=0.5, image=ImageOptions(8, 8), normalize="imagenet")
    assert s.sizes == {"train": 8, "val": 8, "test": 8} and s.class_names == ["c0", "c1"]
    assert all(f.startswith(f"{split}/") for split in s.files for f in s.files[split])
    assert s.mean.tolist() == list(IMAGENET[0]) and s.std.tolist() == list(IMAGENET[1])
    assert s.x["val"][np.array([0, 5])].shape == (2, 8, 8, 3)  # decoded where indexed


def test_bad_folders_are_refused_with_one_message(tmp_path):
    def refused(root, match, **kw):
        with pytest.raises(DataError, match=match):
            prepare_data(f"folder:{root}", image=ImageOptions(8, 8), **kw)

    refused(tmp_path / "none", "image folder .*none not found: an image folder holds train/CLASS")
    make_folder(tmp_path / "f", per_class=(3, 3), splits=("train", "test"))
    (tmp_path / "f" / "test" / "c9").mkdir()
    refused(tmp_path / "f", "test: class directory 'c9' is not one of train/'s classes")
    make_folder(tmp_path / "g", per_class=(3,))
    refused(tmp_path / "g", "at least 2 class directories are needed, found 1")
    bad = make_folder(tmp_path / "bad", per_class=(3, 3))
    (bad / "train" / "c1" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"^\S+broken.png: cannot be decoded as an image \(cannot identify"):
        s = prepare_data(f"folder:{bad}", image=ImageOptions(8, 8), normalize="none", validation=0.0)
        for split in ("train", "test"):  # in DataLoader workers (NORMSCOPE_DATA_WORKERS unset: up to 4)
            for _ in s.batches(split, 2):
                pass
    with pytest.raises(DataError, match="the resize at least the size"):
        ImageOptions(16, 8)
    yml = tiny(tmp_path)
    r = CliRunner().invoke(app, ["train", str(yml), "--data", f"folder:{tmp_path / 'none'}", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "not found" in r.output and "Traceback" not in r.output
    assert not list(tmp_path.glob("tiny-*"))


def test_a_run_on_a_folder_records_its_splits_and_eval_and_features_reload_them(tmp_path):
    root = make_folder(tmp_path / "f")
    run = train(tiny(tmp_path), data=f"folder:{root}", normalize="imagenet", out=tmp_path / "runs", progress="none")
    config = json.loads((run / "config.json").read_text())
    assert config["data"] == f"folder:{root.resolve()}" and config["train"]["normalize"] == "imagenet"
    assert config["train"]["image_size"] == 16 and config["train"]["resize"] == 16
    assert config["mean"] == list(IMAGENET[0]) and set(config["data_files"]) == {"train", "val", "test"}
    results = json.loads((run / "results.json").read_text())
    r = CliRunner().invoke(app, ["eval", str(run), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["loss"] == pytest.approx(results["test"]["loss"], abs=1e-6)
    r = CliRunner().invoke(app, ["features", str(run), "--layer", "fc1", "--out", str(tmp_path / "f.npz")])
    assert r.exit_code == 0 and "train 11, val 1, test 3" in r.output, r.output
    x, _ = load_run(run).split("test")  # the images as the trainer saw them: ImageNet's statistics
    assert x.shape == (3, 3, 16, 16)
    (root / "train" / "c0" / "0.jpg").write_bytes(b"changed")
    r = CliRunner().invoke(app, ["eval", str(run)])
    assert r.exit_code == 2 and "are not the ones the run was trained on" in r.output


def test_normalize_defaults_to_imagenet_with_torchvision_weights(tmp_path):
    spec_path = tiny(tmp_path)
    from normscope.spec import load_spec

    spec = load_spec(spec_path)
    for weights, standardize, want in (
        ("torchvision:vgg19.IMAGENET1K_V1", True, "imagenet"),
        ("/w.pth", True, "dataset"),
        (None, False, "none"),
    ):
        settings = resolve_settings(spec, {"data": "synthetic"})
        settings.weights, settings.standardize = weights, standardize
        resolve_data_options(spec, settings)
        assert settings.normalize == want


def test_peak_memory_stays_far_below_the_decoded_folder(tmp_path):
    """A folder that decodes to 2,100 × 3 × 128 × 128 bytes (103 MB, over LIMIT) trains, is
    evaluated and gives features with a peak RSS within LIMIT / 3 of a 400-image folder's: it
    is streamed, one batch at a time, never held whole."""
    limit = 100e6
    big, small, warm = tmp_path / "big", tmp_path / "small", tmp_path / "warm"
    for root, n in ((big, 1050), (small, 200), (warm, 10)):
        for c in range(2):
            d = root / "train" / f"c{c}"
            d.mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (8, 8), (200 * c, 90, i % 256)).save(d / f"{i}.png")
    yml = tmp_path / "pool.yml"
    yml.write_text(
        "name: pool\ninput: auto\nclasses: auto\nlayers:\n  - avgpool: 16\n  - flatten\n  - dense: {name: classifier}\n"
        "train: {epochs: 2, batch_size: 64, image_size: 128, normalize: none}\n"
    )
    code = """if True:
        import sys
        from pathlib import Path
        from normscope.analysis.features import extract_features
        from normscope.train import train

        def peak(root):  # the peak RSS of training on root and taking features, from a reset high-water mark
            Path("/proc/self/clear_refs").write_text("5")
            run = train(sys.argv[1], data="folder:" + root, out=sys.argv[2], eval_batch_size=64, progress="none")
            extract_features(run, "flatten1", batch_size=64)
            status = Path("/proc/self/status").read_text()
            return int(status.split("VmHWM:")[1].split()[0])

        peak(sys.argv[5])  # a few images first: imports and one-off allocations
        print(peak(sys.argv[3]), peak(sys.argv[4]))
    """
    # decoding in this process (no workers), large blocks returned to the system when freed
    env = {"PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "NORMSCOPE_DATA_WORKERS": "0", "PATH": "/usr/bin:/bin"}
    env["MALLOC_MMAP_THRESHOLD_"] = "1048576"
    args = [sys.executable, "-c", code, str(yml), str(tmp_path / "runs"), str(small), str(big), str(warm)]
    out = subprocess.run(args, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    small_kb, big_kb = map(int, out.stdout.split()[-2:])
    growth = (big_kb - small_kb) * 1024
    decoded = 2100 * 3 * 128 * 128
    print(f"growth {growth / 1e6:.1f} MB")
    assert decoded > limit and growth < limit / 3, (
        f"peak RSS grew by {growth / 1e6:.1f} MB ({decoded / 1e6:.0f} MB decoded)"
    )
