"""Per-epoch time of training the birds project's head on a frozen ResNet-50, with the
backbone's features cached (train.cache_features: true, the default) and without (the
backbone runs in every epoch, as before the cache existed), on the same machine and data.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/frozen_head.py --images 540 --size 64 --epochs 3

Writes a generated image folder (3 classes) and a random torchvision ResNet-50 state dict
(standing in for the ImageNet weights) under --work, trains examples/resnet50_birds.yml on it
twice, and prints the seconds of each epoch (training and validation) and their medians. The cached run's
one-off feature pass is printed on its own (its note), not counted in an epoch.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from normscope.train import train

ROOT = Path(__file__).resolve().parents[1]


def make_folder(root: Path, images: int, size: int, classes: int = 3) -> None:
    rng = np.random.default_rng(0)
    for i in range(images):
        c = i % classes
        d = root / "train" / f"class{c}"
        d.mkdir(parents=True, exist_ok=True)
        base = np.zeros((size, size, 3))
        base[..., c] = 160
        Image.fromarray((base + rng.integers(0, 90, (size, size, 3))).astype(np.uint8)).save(d / f"{i}.png")


def run(description: Path, data: Path, weights: Path, out: Path, name: str, epochs: int, size: int) -> list[float]:
    seconds: list[float] = []
    train(
        description,
        data=f"folder:{data}",
        weights=str(weights),
        out=out,
        name=name,
        epochs=epochs,
        image_size=size,
        fit_data=True,
        device="cpu",
        progress="log",
        callbacks=[lambda row: seconds.append(row["seconds"])],
    )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=540)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="frozen_head_"))
    data, weights = work / "folder", work / "resnet50_random.pth"
    if not data.exists():
        make_folder(data, args.images, args.size)
    if not weights.exists():
        import torchvision

        torch.save(torchvision.models.resnet50(weights=None).state_dict(), weights)
    uncached = work / "uncached.yml"
    uncached.write_text(f"extends: {ROOT / 'examples/resnet50_birds.yml'}\ntrain:\n  cache_features: false\n")
    results = {}
    for label, description in (("backbone every epoch", uncached), ("cached features", None)):
        t0 = time.perf_counter()
        path = description or ROOT / "examples/resnet50_birds.yml"
        results[label] = run(path, data, weights, work / "runs", label.replace(" ", "_"), args.epochs, args.size)
        epochs = ", ".join(f"{s:.2f}" for s in results[label])
        print(f"{label}: epochs {epochs} s ({time.perf_counter() - t0:.1f} s in all)")
    before, after = (statistics.median(v) for v in results.values())
    print(
        f"{args.images} images at {args.size} px, torch threads {torch.get_num_threads()}: median epoch "
        f"{before:.2f} s -> {after:.3f} s ({before / after:.0f}x faster)"
    )


if __name__ == "__main__":
    main()
