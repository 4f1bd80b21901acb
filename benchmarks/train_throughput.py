"""Training throughput: normscope's trainer against a plain PyTorch loop.

Both train the same model (a normscope description and variant) with the same batch
size, optimizer (Adam, lr 1e-3), augmentation (random crop with 4 px padding,
horizontal flip) and device, on the same random CIFAR-sized uint8 images:

- normscope: ``normscope.train.train`` (data as uint8 on the device, augmentation on
  the device; on CUDA bfloat16 autocast + channels_last, ``--compile`` optional);
  images/s of the training loop alone, from the epochs after the first.
- plain: a torchvision-style Dataset of PIL images with ``transforms.Compose([RandomCrop,
  RandomHorizontalFlip, ToTensor, Normalize])``, a shuffling DataLoader, float32, the
  textbook ``zero_grad / forward / loss / backward / step`` loop; images/s of the epochs
  after the first.

Prints one JSON object (and a summary line on stderr); the ratio is normscope / plain.

    python benchmarks/train_throughput.py                       # vgg16_bn_v2, 2048 images
    python benchmarks/train_throughput.py --model examples/perceptnet.yml --norm gdn --reuse
    python benchmarks/train_throughput.py --n 50000 --epochs 3 --device cuda --workers 8
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from normscope import build_model
from normscope.data.batches import DeviceData, Splits, epoch_order, to_input
from normscope.train import pick_device, train

ROOT = Path(__file__).resolve().parents[1]


def make_data(path: Path, n: int, size: int, channels: int, classes: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8),
        y_train=rng.integers(0, classes, n),
        x_test=rng.integers(0, 256, (64, size, size, channels), dtype=np.uint8),
        y_test=rng.integers(0, classes, 64),
        class_names=np.array([f"c{i}" for i in range(classes)]),
    )


def bench_normscope(desc: Path, npz: Path, args) -> dict:
    rows = []
    t0 = time.perf_counter()
    run = train(
        desc,
        data=f"npz:{npz}",
        out=Path(args.tmp) / "runs",
        norm=args.norm,
        reuse=args.reuse,
        epochs=args.epochs,
        batch_size=args.batch_size,
        device=args.device,
        fit_data=True,
        compile=args.compile,
        progress="none",
        callbacks=[rows.append],
    )
    wall = time.perf_counter() - t0
    cfg = json.loads((run / "config.json").read_text())
    n = cfg["sizes"]["train"]
    steady = rows[1:] or rows
    seconds = sum(r["train_seconds"] for r in steady)
    return {
        "images_per_second": n * len(steady) / seconds,
        "train_images": n,
        "epoch_seconds": [round(r["train_seconds"], 3) for r in rows],
        "wall_seconds": round(wall, 2),
        "amp": cfg["amp"],
        "channels_last": cfg["channels_last"],
        "compile": cfg["compile"],
    }


def bench_plain(desc: Path, npz: Path, args) -> dict:
    from PIL import Image  # PIL, torchvision: only the plain loop's pipeline needs them
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    arrays = np.load(npz)
    x, y = arrays["x_train"], arrays["y_train"]
    size, channels = x.shape[1], x.shape[3]
    mean = (x.reshape(-1, channels).mean(0) / 255).tolist()
    std = (x.reshape(-1, channels).std(0) / 255).tolist()

    class ImageArrays(Dataset):  # what torchvision.datasets.CIFAR100 does: PIL image per item
        def __init__(self, images, labels, transform):
            self.images, self.labels, self.transform = images, labels, transform

        def __len__(self):
            return len(self.images)

        def __getitem__(self, i):
            img = self.images[i]
            img = Image.fromarray(img[..., 0] if channels == 1 else img)
            return self.transform(img), int(self.labels[i])

    tf = transforms.Compose(
        [
            transforms.RandomCrop(size, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    device = torch.device(args.device_resolved)
    loader = DataLoader(
        ImageArrays(x, y, tf),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=args.workers > 0,
    )
    torch.manual_seed(0)
    model = build_model(
        desc, norm=args.norm, reuse=args.reuse, input_shape=(channels, size, size), classes=args.classes
    ).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for _ in range(args.epochs):
        model.train()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
        loss.item()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    steady = times[1:] or times
    return {
        "images_per_second": len(x) * len(steady) / sum(steady),
        "train_images": len(x),
        "epoch_seconds": [round(t, 3) for t in times],
        "workers": args.workers,
    }


def bench_data_only(npz: Path, args) -> dict:
    """Images/s of the input pipelines alone (augmented, standardized batches on the device,
    no model): the ceiling each trainer has when the model is fast (a GPU)."""
    from PIL import Image  # PIL, torchvision: only the plain loop's pipeline needs them
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    arrays = np.load(npz)
    x, y = arrays["x_train"], arrays["y_train"]
    n, size, channels = len(x), x.shape[1], x.shape[3]
    device = torch.device(args.device_resolved)
    mean, std = x.reshape(-1, channels).mean(0) / 255, x.reshape(-1, channels).std(0) / 255

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    s = Splits(
        "bench",
        {"train": x, "val": x[:0], "test": x[:1]},
        {"train": y, "val": y[:0], "test": y[:1]},
        mean,
        std,
        [str(i) for i in range(args.classes)],
    )
    data = DeviceData(s, device, crop=4)
    sync()
    t0 = time.perf_counter()
    for epoch in range(2):
        perm, off, flips = epoch_order(n, 0, epoch, 4, True)
        perm, off, flips = perm.to(device), off.to(device), flips.to(device)
        for b in range(0, n, args.batch_size):
            sl = slice(b, b + args.batch_size)
            xb = to_input(data.train_batch(perm[sl], off[sl], flips[sl]), data.mean, data.std)
    sync()
    ours = 2 * n / (time.perf_counter() - t0)

    class ImageArrays(Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            img = x[i]
            return tf(Image.fromarray(img[..., 0] if channels == 1 else img)), int(y[i])

    tf = transforms.Compose(
        [
            transforms.RandomCrop(size, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean.tolist(), std.tolist()),
        ]
    )
    loader = DataLoader(
        ImageArrays(),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
    )
    sync()
    t0 = time.perf_counter()
    for _ in range(2):
        for xb, yb in loader:
            xb = xb.to(device, non_blocking=True)
    sync()
    plain = 2 * n / (time.perf_counter() - t0)
    return {"normscope_images_per_second": ours, "plain_images_per_second": plain, "ratio": ours / plain}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(ROOT / "examples" / "vgg16.yml"))
    p.add_argument("--norm", default="bn")
    p.add_argument("--reuse", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--n", type=int, default=2048, help="training images (random, CIFAR-sized)")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=2, help="the first is warm-up and not counted")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: 0 on CPU, 8 on CUDA)")
    p.add_argument("--compile", action="store_true", help="torch.compile in normscope's trainer")
    p.add_argument("--only", choices=("normscope", "plain"), default=None)
    args = p.parse_args(argv)

    dev = pick_device(args.device)
    args.device_resolved = str(dev)
    if args.workers is None:
        args.workers = 8 if dev.type == "cuda" else 0
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        npz = Path(tmp) / "data.npz"
        make_data(npz, args.n, args.size, args.channels, args.classes)
        desc = Path(tmp) / "bench.yml"  # the model with the benchmark's settings
        desc.write_text(
            f"extends: {Path(args.model).resolve()}\n"
            "train: {optimizer: adam, lr: 0.001, validation: 0.0, augment: {crop: 4, flip: true}}\n"
        )
        result = {
            "model": Path(args.model).stem,
            "norm": args.norm,
            "reuse": args.reuse,
            "device": str(dev),
            "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "batch_size": args.batch_size,
            "epochs": args.epochs,
            "image": [args.channels, args.size, args.size],
            "classes": args.classes,
            "load_average": os.getloadavg()[0],
        }
        if args.only in (None, "normscope"):
            result["normscope"] = bench_normscope(desc, npz, args)
        if args.only in (None, "plain"):
            result["plain"] = bench_plain(desc, npz, args)
        if args.only is None:
            result["data_pipeline_only"] = bench_data_only(npz, args)
        if "normscope" in result and "plain" in result:
            result["ratio"] = result["normscope"]["images_per_second"] / result["plain"]["images_per_second"]
    print(json.dumps(result, indent=2))
    if "ratio" in result:
        print(
            f"{result['model']}_{args.norm}{'_v2' if args.reuse else ''} on {result['device_name']}: normscope "
            f"{result['normscope']['images_per_second']:.0f} img/s, plain loop "
            f"{result['plain']['images_per_second']:.0f} img/s, ratio {result['ratio']:.2f}x; input pipelines "
            f"alone: {result['data_pipeline_only']['ratio']:.1f}x",
            file=sys.stderr,
        )
    return result


if __name__ == "__main__":
    main()
