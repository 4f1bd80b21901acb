"""Hostile input, round three (issue 21): data files, weights and `features --out`.

Every refusal is one line naming what is wrong and where, exit status 2, no traceback,
and leaves the directories it read byte-identical (hashed before and after). Compression
bombs are refused with bounded memory: the peak resident set of the real command line
(os.wait4 of the subprocess) or the peak of tracemalloc (which sees numpy's allocations)
in this process.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import normscope
from fixtures import tree_hash, write_cifar100_fixture
from normscope.cli import app
from normscope.data import DataError, load_cifar100, load_dataset
from normscope.data.cifar100_archive import read_cifar_tarball
from normscope.train import train

pytestmark = pytest.mark.usefixtures("one_thread")

SRC = str(Path(normscope.__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
DATA = "synthetic:train=60,test=20,size=8,classes=2"
TINY = """\
name: tiny
input: auto
classes: auto
layers:
  - conv: {filters: 4, kernel: 3, activation: relu}
  - flatten
  - dense: {name: classifier}
train: {epochs: 1, batch_size: 32}
"""


def invoke(args) -> tuple[int, str]:
    """(exit status, stdout and stderr as one line); no exception may escape the command."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args}: {result.exception!r}") from result.exception
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


def peak_of(call) -> tuple[BaseException, int]:
    """(the DataError ``call()`` raises, the peak of the memory allocated meanwhile as
    tracemalloc counts it: Python's and numpy's allocations)."""
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as found:
            call()
        return found.value, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, array)
    return out.getvalue()


def write_npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name + ".npy", data)
    return path


RNG = np.random.default_rng(0)
X = RNG.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8)
Y = np.arange(20) % 2


def _arrays(**changed) -> dict[str, bytes]:
    arrays = {"x_train": npy(X), "y_train": npy(Y), "x_test": npy(X[:6]), "y_test": npy(Y[:6])}
    arrays.update(changed)
    return arrays


# case -> (members of the npz, words of the message)
NPZ = {
    "uint64-label-2**63": (
        _arrays(y_train=npy(np.array([0, 1] * 9 + [2**63, 1], dtype=np.uint64))),
        ["'y_train' has label 9,223,372,036,854,775,808", "K at most 100,000"],
    ),
    "member-shorter-than-its-header": (
        _arrays(x_train=npy(X)[:-100]),
        ["'x_train': its .npy header declares 20x8x8x3 uint8 = 3,840 bytes", "holds only 3,740", "truncated"],
    ),
    "member-longer-than-its-header": (
        _arrays(x_train=npy(X) + bytes(64)),
        ["'x_train': its .npy header declares 20x8x8x3 uint8 = 3,840 bytes", "holds 3,904; it is damaged"],
    ),
    "object-array": (
        _arrays(y_test=npy(np.array([0, 1, 0, 1, 0, 1], dtype=object))),
        ["'y_test' is an object array"],
    ),
    "zero-height-images": (
        _arrays(x_train=npy(np.zeros((20, 0, 8, 3), np.uint8)), x_test=npy(np.zeros((6, 0, 8, 3), np.uint8))),
        ["'x_train' holds images of 0x8 pixels with 3 channels; none may be 0"],
    ),
    "zero-width-channel-first": (
        _arrays(x_train=npy(np.zeros((20, 3, 8, 0), np.uint8))),
        ["'x_train' holds images of 8x0 pixels with 3 channels"],
    ),
}


@pytest.mark.parametrize("case", list(NPZ))
def test_hostile_npz_is_refused(case, tmp_path):
    members, words = NPZ[case]
    path = write_npz(tmp_path / "d.npz", members)
    before = tree_hash(tmp_path)
    code, message = invoke(["data", "info", f"npz:{path}"])
    assert code == 2, message
    assert message.startswith(f"error: {path}"), message
    for word in words:
        assert word in message, (word, message)
    assert tree_hash(tmp_path) == before


def test_uint64_labels_refused_by_train_before_a_run_exists(tmp_path):
    """Issue 21: the label wrapped to a negative int64 and `train` ended in an IndexError with
    the run left `running`."""
    (tmp_path / "tiny.yml").write_text(TINY)
    path = write_npz(tmp_path / "d.npz", NPZ["uint64-label-2**63"][0])
    code, message = invoke(["train", tmp_path / "tiny.yml", "--data", f"npz:{path}", "--out", tmp_path / "runs"])
    assert code == 2 and "'y_train' has label 9,223,372,036,854,775,808" in message, message
    assert not (tmp_path / "runs").exists()


def test_four_channel_first_images_warn_and_layout_says_which(tmp_path):
    """N x 4 x 16 x 16 was read as 4x16 images with 16 channels, silently. Now: read as NCHW
    with a warning naming the option; `,layout=nhwc` / `,layout=nchw` say which, silently."""
    x = RNG.integers(0, 256, (20, 4, 16, 16), dtype=np.uint8)
    path = write_npz(tmp_path / "d.npz", _arrays(x_train=npy(x), x_test=npy(x[:6])))
    shown = subprocess.run(  # the real command line: Python's warnings machinery as a user has it
        [sys.executable, "-m", "normscope", "data", "info", f"npz:{path}", "--json"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    message = " ".join(shown.stderr.split())
    assert message.startswith(f"warning: {path}: 'x_train' has shape (20, 4, 16, 16), which may be"), message
    assert f"read as NCHW (16x16 images with 4 channels). If it is NHWC, use --data npz:{path},layout=nhwc" in message
    assert message.count("warning:") == 2 and "'x_test' has shape (6, 4, 16, 16)" in message
    assert json.loads(shown.stdout)["input_shape"] == [4, 16, 16]
    for layout, shape in (("nhwc", "[ 16, 4, 16 ]"), ("nchw", "[ 4, 16, 16 ]")):
        code, message = invoke(["data", "info", f"npz:{path},layout={layout}", "--json"])
        assert code == 0 and "warning" not in message and f'"input_shape": {shape}' in message, message
    code, message = invoke(["data", "info", f"npz:{path},layout=chw"])
    assert code == 2 and "layout must be nhwc or nchw, got 'chw'" in message, message
    rgb = RNG.integers(0, 256, (20, 3, 16, 16), dtype=np.uint8)  # one axis of 3: no doubt, no warning
    path = write_npz(tmp_path / "rgb.npz", _arrays(x_train=npy(rgb), x_test=npy(rgb[:6])))
    code, message = invoke(["data", "info", f"npz:{path}", "--json"])
    assert code == 0 and "warning" not in message and '"input_shape": [ 3, 16, 16 ]' in message, message


GIB = 1 << 30


def _npz_bomb(path: Path) -> Path:
    """x_train: 1 GiB of zeros in a consistent member (its header and the zip agree) that
    deflates to about 4.6 MB."""
    header = {"descr": "|u1", "fortran_order": False, "shape": (16384, 256, 256, 1)}
    zeros = bytes(16 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("x_train.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            for _ in range(GIB // len(zeros)):
                f.write(zeros)
        for name, data in _arrays().items():
            if name != "x_train":
                zf.writestr(name + ".npy", data)
    return path


def test_npz_compression_bomb_is_refused_with_bounded_memory(tmp_path):
    path = _npz_bomb(tmp_path / "bomb.npz")
    assert path.stat().st_size < 8_000_000
    before = tree_hash(tmp_path)
    code, message = invoke(["data", "info", f"npz:{path}"])
    assert code == 2, message
    assert f"error: {path}: 'x_train':" in message and "inflate to 1,073,741,952" in message, message
    assert "refusing a compression bomb" in message
    error, peak = peak_of(lambda: load_dataset(f"npz:{path}"))
    assert "refusing a compression bomb" in str(error)
    assert peak < 16 << 20, peak  # the member inflates to 1 GiB
    assert tree_hash(tmp_path) == before


def _cifar_bomb(root: Path, size: int = 2 * GIB) -> Path:
    """A 2 MB cifar-100-python.tar.gz whose `train` member inflates to 2 GiB (gzip members of
    zeros, concatenated: one is compressed, the rest repeat it)."""
    root.mkdir(parents=True, exist_ok=True)
    info = tarfile.TarInfo("cifar-100-python/train")
    info.size = size
    block = gzip.compress(bytes(1 << 20), 9)
    with open(root / "cifar-100-python.tar.gz", "wb") as f:
        f.write(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT)))
        for _ in range(size >> 20):
            f.write(block)
        f.write(gzip.compress(bytes(1024)))
    return root / "cifar-100-python.tar.gz"


BOMB_WORDS = "cifar-100-python/train declares 2,147,483,648 bytes but CIFAR-100's train has at most 160,000,000"


def test_cifar_tarball_bomb_is_refused_before_writing(tmp_path):
    """Issue 21: 2 MB wrote 2 GB to disk and left it there. Now nothing is inflated: the
    member's declared size is over what CIFAR-100's train can be; no partial output stays."""
    tarball = _cifar_bomb(tmp_path / "data")
    assert tarball.stat().st_size < 3_000_000
    before = tree_hash(tmp_path / "data")
    code, message = invoke(["data", "info", "cifar100", "--data-dir", tmp_path / "data"])
    assert code == 2 and f"{tarball}: {BOMB_WORDS}; refusing to inflate it" in message, message
    error, peak = peak_of(lambda: load_cifar100(tmp_path / "data"))
    assert BOMB_WORDS in str(error) and peak < 16 << 20, peak
    assert tree_hash(tmp_path / "data") == before and sorted(os.listdir(tmp_path / "data")) == [tarball.name]


def test_cifar_tarball_bomb_read_in_memory_is_refused(tmp_path):
    """A read-only directory's path (read_cifar_tarball: the members read in memory): the
    same bound, little memory."""
    tarball = _cifar_bomb(tmp_path)
    error, peak = peak_of(lambda: read_cifar_tarball(tarball))
    assert BOMB_WORDS in str(error) and peak < 16 << 20, peak


class _Ndarray:  # what a tampered pickle builds: numpy.ndarray(shape, dtype), uninitialised
    def __reduce__(self):
        return (np.ndarray, ((630_000, 3072), "uint8"))


def _tamper_cifar(root: Path, **entries) -> Path:
    d = write_cifar100_fixture(root, 20, 10)
    train_part = pickle.loads((d / "train").read_bytes())
    train_part.update(entries)
    (d / "train").write_bytes(pickle.dumps(train_part, protocol=2))
    return d


def test_cifar_pickle_building_an_array_by_its_constructor_is_refused(tmp_path):
    """Issue 21: a 224-byte `train` reserved 4.9 GB and reported 630,000 images."""
    d = _tamper_cifar(tmp_path, data=_Ndarray())
    before = tree_hash(tmp_path)
    error, peak = peak_of(lambda: load_cifar100(tmp_path))
    assert f"{d}/train is not a readable CIFAR pickle" in str(error)
    assert "numpy.ndarray(...) is called directly: not how CIFAR pickles build arrays" in str(error)
    assert peak < 64 << 20, peak
    assert tree_hash(tmp_path) == before


@pytest.mark.parametrize(
    "entries, words",
    [
        ({"fine_labels": ["cat"] * 20}, ["'fine_labels' must hold integer labels 0..99, found str 'cat'"]),
        ({"fine_labels": [2**70] * 20}, ["'fine_labels' must hold integer labels 0..99, found int"]),
        (
            {"data": np.zeros((20, 3072), np.float32)},
            ["not a readable CIFAR pickle", "dtype 'f4' is not part of the CIFAR format"],
        ),
        ({"data": np.zeros((50_001, 1), np.uint8)}, ["'data' must be an N x 3072 uint8 array"]),
    ],
    ids=["string-labels", "huge-labels", "float-data", "wrong-shape"],
)
def test_cifar_pickle_outside_the_format_is_refused(entries, words, tmp_path):
    _tamper_cifar(tmp_path / "data", **entries)
    before = tree_hash(tmp_path)
    code, message = invoke(["data", "info", "cifar100", "--data-dir", tmp_path / "data"])
    assert code == 2, message
    for word in words:
        assert word in message, (word, message)
    assert tree_hash(tmp_path) == before


# --------------------------------------------------------------------------- #
# --weights and features --out
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("tiny-run")
    (where / "tiny.yml").write_text(TINY)
    return train(where / "tiny.yml", data=DATA, out=where / "runs", name="run", progress="none")


def _weights(tiny_run: Path, tmp_path: Path, change) -> Path:
    state = torch.load(tiny_run / "best.pt", weights_only=True)["model"]
    state = {k: change(k, v) for k, v in state.items()}
    torch.save(state, tmp_path / "w.pth")
    return tmp_path / "w.pth"


def _first(value):
    def change(key, v):
        return value(v) if key.endswith("conv1.weight") else v

    return change


WEIGHTS = {
    "nan": (
        _first(lambda v: v.index_fill(0, torch.tensor([0]), float("nan"))),
        "holds 27 NaN or infinite values of 108",
    ),
    "inf": (_first(lambda v: v.masked_fill(v > 0, float("inf"))), "NaN or infinite values"),
    "complex": (_first(lambda v: v.to(torch.complex64)), "is complex64 (complex numbers); weights are real"),
    "bool": (_first(lambda v: v > 0), "is bool (true/false values); weights are real floating-point numbers"),
    "int64": (_first(lambda v: v.long()), "is int64 (integers); weights are real floating-point numbers"),
}


@pytest.mark.parametrize("case", list(WEIGHTS))
def test_weights_that_are_not_finite_real_numbers_are_refused(case, tiny_run, tmp_path):
    change, words = WEIGHTS[case]
    path = _weights(tiny_run, tmp_path, change)
    (tmp_path / "tiny.yml").write_text(TINY)
    before = tree_hash(tmp_path)
    out = tmp_path / "runs"
    code, message = invoke(["train", tmp_path / "tiny.yml", "--data", DATA, "--weights", path, "--out", out])
    assert code == 2, message
    assert f"{path}" in message and "tensor 'layers.conv1.weight'" in message and words in message, message
    assert tree_hash(tmp_path) == before and not out.exists()


def test_float64_weights_are_cast_with_a_note(tiny_run, tmp_path):
    path = _weights(tiny_run, tmp_path, lambda k, v: v.double() if v.is_floating_point() else v)
    (tmp_path / "tiny.yml").write_text(TINY)
    args = ["train", tmp_path / "tiny.yml", "--data", DATA, "--weights", path, "--out", tmp_path / "runs"]
    code, message = invoke([*args, "--progress", "log"])
    assert code == 0, message
    assert "2 layers loaded" in message and "note: float64 tensors are cast to float32" in message, message


@pytest.mark.parametrize(
    "out, words",
    [
        ("{run}/best.pt", ["--out {run}/best.pt would write over a file of the run"]),
        ("{run}/results.json", ["would write over a file of the run"]),
        ("{run}/.lock.npz", ["would write over a file of the run"]),
        ("{run}", ["--out {run} is a directory; give the .npz file to write"]),
        ("{run}/best.pt/x.npz", ["--out {run}/best.pt/x.npz", "exists and is not a directory"]),
    ],
    ids=["checkpoint", "results", "hidden", "directory", "below-a-file"],
)
def test_features_never_writes_over_the_run(out, words, tiny_run, tmp_path):
    before = tree_hash(tiny_run)
    out = out.format(run=tiny_run)
    code, message = invoke(["features", tiny_run, "--layer", "conv1", "--out", out])
    assert code == 2, message
    for word in words:
        assert word.format(run=tiny_run) in message, (word, message)
    assert tree_hash(tiny_run) == before
