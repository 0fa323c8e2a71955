"""Training-input throughput: our batched pipeline against the seeds' per-photo pipeline.

    python -m benchmarks.bench_training [--data data/landscape] [--batches 8] [--out results/bench_training.csv]

Both pipelines turn the same uint8 photos into (L, target) batches with the same random crops
and flips:

- per-photo (the seeds' way): a torch Dataset whose __getitem__ crops and flips one photo in
  numpy, converts it with skimage.color.rgb2lab and encodes its target, batched by a
  DataLoader (num_workers=0: the 2-core machine has no spare core for workers);
- batched (ours, training/train.py): gather the batch by index, crop and flip it as one tensor,
  colorizer.lab.rgb_to_lab and the bins' encoder on the whole batch, on the training device.

Measured twice: the input pipeline alone ("data"), and a full training step of the shipped
model ("step": pipeline + forward + backward + Adam). The two pipelines alternate batch by
batch so that load from other processes on a shared machine hits both alike. CPU always, CUDA
too when there is one. Prints the ratios and writes a CSV with the machine and command.
"""

from __future__ import annotations

import argparse
import csv
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from skimage.color import rgb2lab
from torch.utils.data import DataLoader, Dataset

from colorizer.lab import ab_to_unit
from colorizer.models import create_model
from colorizer.provenance import invocation, machine_string, utc_now
from training.data import make_batch, to_lab


class PerPhotoDataset(Dataset):
    """The seeds' pipeline: one photo at a time, skimage rgb2lab, target per photo."""

    def __init__(self, images: np.ndarray, crop: int, bins, seed: int = 0) -> None:
        self.images, self.crop, self.bins = images, crop, bins
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.images[i]
        h, w = img.shape[:2]
        y, x = self.rng.integers(0, h - self.crop + 1), self.rng.integers(0, w - self.crop + 1)
        img = img[y : y + self.crop, x : x + self.crop]
        if self.rng.random() < 0.5:
            img = img[:, ::-1]
        lab = rgb2lab(img).astype(np.float32)  # (c, c, 3)
        L = torch.from_numpy(lab[..., :1]).permute(2, 0, 1)  # (1, c, c)
        ab = torch.from_numpy(lab[..., 1:]).permute(2, 0, 1)  # (2, c, c)
        target = self.bins.encode_soft(ab[None])[0] if self.bins is not None else ab_to_unit(ab)
        return L, target


def synthetic_photos(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour fields (no real photos needed to time a pipeline)."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(n, 3, 8, 8, generator=g)
    big = torch.nn.functional.interpolate(
        small, size=(size, size), mode="bicubic", align_corners=False
    )
    return (big.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def bench_device(
    device: torch.device, images: np.ndarray, args: argparse.Namespace, command: str
) -> list[dict]:
    """Time both pipelines on one device, alternating batch by batch; one row per result."""
    model = create_model(args.model).to(device)
    bins = model.bins if model.kind == "classification" else None
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    imgs_t = torch.from_numpy(images).to(device)
    loader = DataLoader(
        PerPhotoDataset(images, args.crop, bins),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=0,
    )

    def per_photo_batches():
        while True:
            yield from loader

    pp_iter = per_photo_batches()
    g = torch.Generator().manual_seed(0)

    def batched() -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(images), (args.batch_size,), generator=g)
        L, ab = to_lab(make_batch(imgs_t, idx, args.crop, True, g, device))  # (B,1,c,c), (B,2,c,c)
        return L, bins.encode_soft(ab) if bins is not None else ab_to_unit(ab)

    def per_photo() -> tuple[torch.Tensor, torch.Tensor]:
        L, tgt = next(pp_iter)
        return L.to(device), tgt.to(device)

    def step(L: torch.Tensor, target: torch.Tensor) -> None:
        out = model(L)
        if bins is not None:  # both pipelines' soft targets go through the same loss
            target = torch.nn.functional.interpolate(target, size=out.shape[-2:], mode="area")
            loss = -(target * torch.log_softmax(out.float(), 1)).sum(1).mean()
        else:
            loss = torch.nn.functional.mse_loss(out, target)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    rows = []
    for stage in ("data", "step"):
        times = {"per-photo": 0.0, "batched": 0.0}
        for i in range(args.batches + 1):  # batch 0 warms up and is not timed
            for name, fn in (("per-photo", per_photo), ("batched", batched)):
                sync()
                t = time.perf_counter()
                L, tgt = fn()
                if stage == "step":
                    step(L, tgt)
                sync()
                if i:
                    times[name] += time.perf_counter() - t
        n = args.batches * args.batch_size
        base = n / times["per-photo"]
        for name in ("per-photo", "batched"):
            rate = n / times[name]
            rows.append(
                dict(
                    date=utc_now(),
                    machine=machine_string(device),
                    device=device.type,
                    stage=stage,
                    pipeline=name,
                    model=args.model if stage == "step" else "-",
                    batch=args.batch_size,
                    crop=args.crop,
                    photos=n,
                    photos_per_s=f"{rate:.1f}",
                    ratio_vs_per_photo=f"{rate / base:.2f}",
                    command=command,
                )
            )
            print(
                f"{device.type:4s} {stage:4s} {name:9s} {rate:8.1f} photos/s  x{rate / base:.2f} vs per-photo"
            )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="a prepared data folder (default: synthetic 128x128 photos)")
    ap.add_argument("--batches", type=int, default=8, help="timed batches per pipeline and stage")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--model", default="colornet", help="model for the full-step stage")
    ap.add_argument("--out", default="results/bench_training.csv")
    ap.add_argument(
        "--append", action="store_true", help="add rows to --out instead of replacing it"
    )
    args = ap.parse_args()

    n = args.batch_size * (args.batches + 1) * 2
    if args.data:
        from training.prepare import load_split

        images = np.array(load_split(args.data, "train")[:n])
    else:
        images = synthetic_photos(n, 128)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    command = invocation(speed_env=True)  # with OMP_NUM_THREADS: part of how it ran
    rows = [r for d in devices for r in bench_device(d, images, args, command)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    append = args.append and out.is_file()
    with open(out, "a" if append else "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        if not append:
            w.writeheader()
        w.writerows(rows)
    print(f"wrote {out} ({platform.node()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
