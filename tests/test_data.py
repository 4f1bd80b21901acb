import gzip
import io
import os
import pickle
import socket
import struct
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest

from fixtures import write_cifar100_fixture, write_fashion_mnist_fixture, write_idx
from normscope.data import (
    CIFAR100_COARSE_LABEL_NAMES,
    CIFAR100_FINE_LABEL_NAMES,
    CIFAR100_FINE_TO_COARSE,
    FASHION_MNIST_CLASS_NAMES,
    FASHION_MNIST_DEFAULT_DIR,
    DataError,
    Dataset,
    channel_stats,
    download_cifar100,
    load_dataset,
    read_idx,
    split_validation,
    subset,
)
from normscope.errors import NormscopeError

# ----------------------------------------------------------------- CIFAR-100


def _raw_pickle(path):
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def test_cifar100_fixture_constants():
    assert len(CIFAR100_FINE_LABEL_NAMES) == 100
    assert len(CIFAR100_COARSE_LABEL_NAMES) == 20
    assert sorted(np.bincount(CIFAR100_FINE_TO_COARSE).tolist()) == [5] * 20


@pytest.mark.parametrize("bytes_keys", [False, True])
def test_cifar100_directory_roundtrip(tmp_path, bytes_keys):
    d = write_cifar100_fixture(tmp_path, n_train=200, n_test=100, seed=1, bytes_keys=bytes_keys)
    assert d == tmp_path / "cifar-100-python"
    ds = load_dataset("cifar100", data_dir=tmp_path)
    assert isinstance(ds, Dataset)
    assert ds.name == "cifar100"
    assert ds.x_train.shape == (200, 32, 32, 3) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (100, 32, 32, 3)
    assert ds.y_train.dtype == np.int64 and ds.y_train.shape == (200,)
    assert ds.input_shape == (3, 32, 32)
    assert ds.num_classes == 100
    assert ds.class_names == CIFAR100_FINE_LABEL_NAMES
    raw = _raw_pickle(d / "train")
    key = (lambda s: s.encode()) if bytes_keys else (lambda s: s)
    np.testing.assert_array_equal(ds.y_train, raw[key("fine_labels")])
    # channel-planar layout: 1024 red, 1024 green, 1024 blue values, row-major
    data = raw[key("data")]
    i, r, c = 7, 5, 11
    for ch in range(3):
        assert ds.x_train[i, r, c, ch] == data[i, ch * 1024 + r * 32 + c]
    coarse = load_dataset("cifar100-coarse", data_dir=tmp_path)
    assert coarse.num_classes == 20
    np.testing.assert_array_equal(coarse.y_train, np.asarray(CIFAR100_FINE_TO_COARSE)[ds.y_train])
    np.testing.assert_array_equal(coarse.x_test, ds.x_test)


def test_cifar100_inner_directory_also_accepted(tmp_path):
    d = write_cifar100_fixture(tmp_path, n_train=20, n_test=10)
    ds = load_dataset("cifar100", data_dir=d)
    assert ds.x_train.shape == (20, 32, 32, 3)


def test_cifar100_tarball_roundtrip(tmp_path):
    ref = load_dataset("cifar100", data_dir=write_cifar100_fixture(tmp_path / "a", 30, 10).parent)
    tb = write_cifar100_fixture(tmp_path / "b", 30, 10, tarball=True)
    assert tb.name == "cifar-100-python.tar.gz"
    assert not (tmp_path / "b" / "cifar-100-python").exists()
    ds = load_dataset("cifar100", data_dir=tmp_path / "b")
    assert (tmp_path / "b" / "cifar-100-python" / "train").is_file()  # extracted
    assert not [p for p in (tmp_path / "b").iterdir() if "partial" in p.name]
    np.testing.assert_array_equal(ds.x_train, ref.x_train)
    np.testing.assert_array_equal(ds.y_test, ref.y_test)
    assert ds.class_names == ref.class_names


def test_cifar100_tarball_path_traversal_rejected(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    with tarfile.open(root / "cifar-100-python.tar.gz", "w:gz") as tar:
        blob = b"owned"
        info = tarfile.TarInfo("../evil.txt")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(DataError, match="unsafe path"):
        load_dataset("cifar100", data_dir=root)
    assert not (tmp_path / "evil.txt").exists()


def test_cifar100_corrupt_tarball(tmp_path):
    (tmp_path / "cifar-100-python.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(DataError, match="corrupt|truncated"):
        load_dataset("cifar100", data_dir=tmp_path)


def test_cifar100_missing_dir_message(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError) as ei:
        load_dataset("cifar100", data_dir=missing)
    msg = str(ei.value)
    assert str(missing) in msg
    assert "cifar-100-python/" in msg and "cifar-100-python.tar.gz" in msg
    assert "normscope data download cifar100" in msg and "--data-dir" in msg
    with pytest.raises(DataError, match="cifar-100-python.tar.gz"):
        load_dataset("cifar100", data_dir=tmp_path)  # exists but empty


def test_cifar100_incomplete_dir(tmp_path):
    d = write_cifar100_fixture(tmp_path, 10, 10)
    (d / "test").unlink()
    with pytest.raises(DataError, match="missing test"):
        load_dataset("cifar100", data_dir=tmp_path)


def test_cifar100_default_dir_from_env(tmp_path, monkeypatch):
    write_cifar100_fixture(tmp_path, 10, 10)
    monkeypatch.setenv("NORMSCOPE_DATA", str(tmp_path))
    assert load_dataset("cifar100").n_train == 10


def test_cifar100_refuses_code_in_pickle(tmp_path):
    d = write_cifar100_fixture(tmp_path, 10, 10)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    (d / "meta").write_bytes(pickle.dumps({"fine_label_names": Evil()}, protocol=2))
    with pytest.raises(DataError, match="not a readable CIFAR pickle"):
        load_dataset("cifar100", data_dir=tmp_path)


def _closed_port() -> int:
    """A local TCP port nothing listens on (connections to it are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_unreachable_raises_quickly(tmp_path):
    """The host is unreachable because every connection goes through a proxy that refuses it,
    so no real download starts even where the internet is reachable. A fresh process: urllib
    reads the proxy settings once per process."""
    proxy = f"http://127.0.0.1:{_closed_port()}"
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("no_proxy", "all_proxy")}
    env.update({"http_proxy": proxy, "https_proxy": proxy, "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy})
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "normscope", "data", "download", "cifar100", "--data-dir", str(tmp_path / "dl")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert time.monotonic() - start < 30
    assert out.returncode == 2, out.stderr
    message = " ".join(out.stderr.split())
    assert "Could not download CIFAR-100" in message and "not reachable" in message, message
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "dl" / "cifar-100-python.tar.gz").exists()  # no partial archive left


def test_download_skips_when_present(tmp_path):
    d = write_cifar100_fixture(tmp_path, 10, 10)
    assert download_cifar100(tmp_path) == d


# ------------------------------------------------------------------- npz


def _arrays(layout, seed=0):
    rng = np.random.default_rng(seed)
    shapes = {"nhwc": (8, 6, 5, 3), "nchw": (8, 3, 6, 5), "gray": (8, 6, 5), "nhwc1": (8, 6, 5, 1)}
    xtr = rng.integers(0, 256, size=shapes[layout], dtype=np.uint8)
    xte = rng.integers(0, 256, size=(4,) + shapes[layout][1:], dtype=np.uint8)
    return dict(x_train=xtr, y_train=np.arange(8) % 4, x_test=xte, y_test=np.arange(4))


@pytest.mark.parametrize("layout", ["nhwc", "nchw", "gray", "nhwc1"])
def test_npz_layouts(tmp_path, layout):
    a = _arrays(layout)
    p = tmp_path / "d.npz"
    np.savez(p, **a)
    ds = load_dataset(f"npz:{p}")
    c = 3 if layout in ("nhwc", "nchw") else 1
    assert ds.x_train.shape == (8, 6, 5, c)
    assert ds.input_shape == (c, 6, 5)
    assert ds.num_classes == 4 and ds.class_names == ["0", "1", "2", "3"]
    if layout == "nchw":
        assert ds.x_train[2, 4, 1, 2] == a["x_train"][2, 2, 4, 1]
    elif layout == "gray":
        assert ds.x_train[2, 4, 1, 0] == a["x_train"][2, 4, 1]
    else:
        np.testing.assert_array_equal(ds.x_train, a["x_train"])


def test_npz_class_names_and_relative_to_data_dir(tmp_path):
    a = _arrays("nhwc")
    np.savez(tmp_path / "mine.npz", class_names=np.array(["a", "b", "c", "d", "e"]), **a)
    ds = load_dataset("npz:mine.npz", data_dir=tmp_path)
    assert ds.class_names == ["a", "b", "c", "d", "e"] and ds.num_classes == 5


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda a: a.pop("y_test"), "'y_test'"),
        (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "'x_train' must be uint8"),
        (lambda a: a.update(y_train=a["y_train"][:5]), "'y_train'"),
        (lambda a: a.update(y_test=np.array([0, 1, -1, 2])), "'y_test' has a negative label"),
        (lambda a: a.update(y_train=np.eye(4)[np.arange(8) % 4]), "'y_train'.*one-hot"),
        (lambda a: a.update(class_names=np.array(["a", "b"])), "'y_train' has label 3"),
        (lambda a: a.update(x_test=np.zeros((4, 7, 5, 3), np.uint8)), "must match"),
    ],
)
def test_npz_bad(tmp_path, mutate, match):
    a = _arrays("nhwc")
    mutate(a)
    p = tmp_path / "bad.npz"
    np.savez(p, **a)
    with pytest.raises(DataError, match=match):
        load_dataset(f"npz:{p}")


def test_npz_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_dataset(f"npz:{tmp_path / 'nope.npz'}")


# ------------------------------------------------------------ fashion-mnist


def test_idx_roundtrip_and_validation(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "a.gz", arr)), arr)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "a", arr)), arr)
    with gzip.open(tmp_path / "bad.gz", "wb") as f:
        f.write(b"\x12\x34\x08\x03" + b"\0" * 20)  # non-zero leading magic bytes
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "bad.gz")
    with gzip.open(tmp_path / "short.gz", "wb") as f:
        f.write(struct.pack(">HBB", 0, 8, 1) + struct.pack(">I", 10) + b"\0" * 9)
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "short.gz")


def test_fashion_mnist_fixture(tmp_path):
    write_fashion_mnist_fixture(tmp_path, n_train=30, n_test=10)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert ds.x_train.shape == (30, 28, 28, 1) and ds.x_test.shape == (10, 28, 28, 1)
    assert ds.input_shape == (1, 28, 28)
    assert ds.class_names == FASHION_MNIST_CLASS_NAMES
    assert ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.x_train[..., 0], read_idx(tmp_path / "train-images-idx3-ubyte.gz"))


def test_fashion_mnist_count_mismatch_and_missing(tmp_path):
    write_fashion_mnist_fixture(tmp_path, n_train=30, n_test=10)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(9, np.uint8))
    with pytest.raises(DataError, match="10 images but .* 9 labels"):
        load_dataset("fashion-mnist", data_dir=tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte.gz"):
        load_dataset("fashion-mnist", data_dir=tmp_path)
    with pytest.raises(DataError, match="dataset-fashion-mnist"):
        load_dataset("fashion-mnist", data_dir=tmp_path / "empty")


@pytest.mark.skipif(
    not (FASHION_MNIST_DEFAULT_DIR / "train-images-idx3-ubyte.gz").exists(),
    reason="Debian dataset-fashion-mnist not installed",
)
def test_real_fashion_mnist():
    ds = load_dataset("fashion-mnist")
    assert ds.x_train.shape == (60000, 28, 28, 1)
    assert ds.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10
    mean, std = channel_stats(ds.x_train)
    assert round(float(mean[0]), 3) == 0.286
    assert round(float(std[0]), 3) == 0.353


# ------------------------------------------------------ synthetic, dispatch


def test_synthetic_default_and_deterministic():
    a = load_dataset("synthetic")
    b = load_dataset("synthetic")
    assert a.x_train.shape == (600, 32, 32, 3) and a.x_test.shape == (200, 32, 32, 3)
    assert a.num_classes == 10 and a.x_train.dtype == np.uint8
    np.testing.assert_array_equal(a.x_train, b.x_train)
    c = load_dataset("synthetic", seed=1)
    assert not np.array_equal(a.x_train, c.x_train)
    d = load_dataset("synthetic:90")
    assert d.n_train == 90 and d.n_test == 30
    e = load_dataset("synthetic:train=40,test=20,classes=4,size=16,channels=1")
    assert e.x_train.shape == (40, 16, 16, 1) and e.num_classes == 4


def test_synthetic_is_learnable():
    ds = load_dataset("synthetic")
    # nearest class mean on raw pixels must beat chance (10%) by far
    xtr = ds.x_train.reshape(len(ds.x_train), -1).astype(np.float64)
    xte = ds.x_test.reshape(len(ds.x_test), -1).astype(np.float64)
    means = np.stack([xtr[ds.y_train == k].mean(0) for k in range(10)])
    pred = ((xte[:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    acc = (pred == ds.y_test).mean()
    assert 0.5 < acc


def test_unknown_spec_lists_known():
    with pytest.raises(DataError) as ei:
        load_dataset("imagenet")
    for name in ("cifar100", "fashion-mnist", "npz:PATH", "synthetic"):
        assert name in str(ei.value)
    with pytest.raises(DataError, match="synthetic:N"):
        load_dataset("synthetic:lots")


# --------------------------------------------------- subset, split, stats


def test_subset_stratified_deterministic():
    ds = load_dataset("synthetic")
    s1 = subset(ds, 100, 50, seed=3)
    s2 = subset(ds, 100, 50, seed=3)
    assert s1.n_train == 100 and s1.n_test == 50
    np.testing.assert_array_equal(s1.x_train, s2.x_train)
    assert np.bincount(s1.y_train, minlength=10).tolist() == [10] * 10
    assert np.bincount(s1.y_test, minlength=10).tolist() == [5] * 10
    s3 = subset(ds, 100, None, seed=4)
    assert not np.array_equal(s1.y_train, s3.y_train) or not np.array_equal(s1.x_train, s3.x_train)
    assert s3.n_test == ds.n_test
    assert subset(ds, None, 10_000).n_test == ds.n_test


def test_split_validation():
    tr, va = split_validation(1000, 0.1, seed=5)
    tr2, va2 = split_validation(1000, 0.1, seed=5)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(va, va2)
    assert len(va) == 100 and len(tr) == 900
    assert not set(tr.tolist()) & set(va.tolist())
    assert sorted(tr.tolist() + va.tolist()) == list(range(1000))
    assert not np.array_equal(va, split_validation(1000, 0.1, seed=6)[1])
    assert len(split_validation(10, 0.0)[1]) == 0
    with pytest.raises(ValueError):
        split_validation(10, 1.0)


def test_channel_stats():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(50, 8, 9, 3), dtype=np.uint8)
    mean, std = channel_stats(x, chunk=7)
    xf = x.astype(np.float64) / 255
    np.testing.assert_allclose(mean, xf.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(std, xf.std(axis=(0, 1, 2)), rtol=1e-9)
    m1, s1 = channel_stats(x[..., 0])
    assert m1.shape == (1,) and m1[0] == pytest.approx(mean[0])


def test_cifar100_tarball_in_readonly_dir(tmp_path, monkeypatch):
    write_cifar100_fixture(tmp_path, 12, 6, tarball=True)
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # read-only
    ds = load_dataset("cifar100", data_dir=tmp_path)
    assert ds.n_train == 12 and ds.num_classes == 100
    assert not (tmp_path / "cifar-100-python").exists()  # read in memory instead


def test_data_error_is_a_normscope_error():
    assert issubclass(DataError, NormscopeError)
