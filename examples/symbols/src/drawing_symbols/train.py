"""Train SymbolNet on freshly rendered symbols, on the CPU, in a few minutes.

    python -m drawing_symbols.train [--samples N] [--epochs E] [--seed S] [--out PATH]

The held-out set is rendered with seed S+1, so it shares no image with the training set; the tests use
yet another seed. The weights file is written atomically, so a worker starting meanwhile never reads a
half-written checkpoint.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from drawing_symbols.render import SYMBOL_CLASSES, render_dataset
from drawing_symbols.symbols import CHECKPOINT_FORMAT, DEFAULT_WEIGHTS, DEFAULT_WIDTHS, SymbolNet

INPUT_SIZE = 64


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> tuple[float, np.ndarray]:
    """Accuracy and the confusion matrix (rows: true class, columns: predicted)."""
    model.eval()
    k = len(SYMBOL_CLASSES)
    confusion = np.zeros((k, k), dtype=np.int64)
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].contiguous(memory_format=torch.channels_last)
            pred = model(xb).argmax(1)
            np.add.at(confusion, (y[i : i + batch_size].numpy(), pred.numpy()), 1)
    return float(np.trace(confusion) / confusion.sum()), confusion


def train(
    samples: int,
    epochs: int,
    seed: int,
    out: pathlib.Path,
    batch_size: int = 128,
    lr: float = 3e-3,
    val_samples: int = 2000,
) -> float:
    """Train, save to `out`, return the held-out accuracy."""
    torch.set_num_threads(2)  # the dev machines have 2 cores; more threads only add contention
    torch.manual_seed(seed)
    start = time.monotonic()

    x_np, y_np = render_dataset(samples, seed, INPUT_SIZE)
    xv_np, yv_np = render_dataset(val_samples, seed + 1, INPUT_SIZE)
    x, y = torch.from_numpy(x_np), torch.from_numpy(y_np)
    xv, yv = torch.from_numpy(xv_np), torch.from_numpy(yv_np)
    print(f"rendered {samples} training + {val_samples} held-out images in {time.monotonic() - start:.1f}s")

    model = SymbolNet(num_classes=len(SYMBOL_CLASSES), widths=DEFAULT_WIDTHS)
    # channels_last makes oneDNN's CPU convolutions ~1.5x faster for these shapes. (Module.to documents
    # memory_format, but torch's type stubs do not list it among the overloads.)
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    n_params = sum(p.numel() for p in model.parameters())
    print(f"SymbolNet widths={DEFAULT_WIDTHS}: {n_params:,} parameters")

    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    steps_per_epoch = (samples + batch_size - 1) // batch_size
    # One-cycle: a short warm-up keeps the fresh BatchNorm statistics from blowing up the first steps, and
    # annealing to ~0 at the end is what gets the last percent of accuracy in so few epochs.
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    val_acc = 0.0
    confusion = np.zeros((0, 0), dtype=np.int64)
    for epoch in range(1, epochs + 1):
        model.train()
        t0 = time.monotonic()
        total, correct, loss_sum = 0, 0, 0.0
        for idx in torch.randperm(samples, generator=gen).split(batch_size):
            xb = x[idx].contiguous(memory_format=torch.channels_last)
            yb = y[idx]
            logits = model(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            total += len(idx)
        val_acc, confusion = _accuracy(model, xv, yv)
        print(
            f"epoch {epoch:2d}/{epochs}  loss {loss_sum / total:.4f}  train acc {correct / total:.4f}  "
            f"held-out acc {val_acc:.4f}  ({time.monotonic() - t0:.1f}s)",
            flush=True,
        )

    seconds = time.monotonic() - start
    for i, name in enumerate(SYMBOL_CLASSES):
        row = confusion[i]
        worst = [f"{SYMBOL_CLASSES[j]}:{row[j]}" for j in np.argsort(row)[::-1] if j != i and row[j] > 0]
        print(f"  {name:18s} {row[i] / max(row.sum(), 1):.3f}  {' '.join(worst[:3])}")

    model.eval()
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "classes": list(SYMBOL_CLASSES),
        "input_size": INPUT_SIZE,
        "widths": list(DEFAULT_WIDTHS),
        "normalisation": "grayscale, pad to square with paper colour, resize, 1 - L/255 (ink high)",
        # Back to the default layout so loading never depends on the layout training happened to use.
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "train": {
            "samples": samples,
            "epochs": epochs,
            "seed": seed,
            "held_out_seed": seed + 1,
            "held_out_samples": val_samples,
            "held_out_accuracy": val_acc,
            "seconds": round(seconds, 1),
            "torch": str(torch.__version__),  # TorchVersion would not pass weights_only loading
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(checkpoint, tmp)
    os.replace(tmp, out)
    print(f"saved {out} ({out.stat().st_size / 1024:.0f} KiB) after {seconds:.0f}s; held-out accuracy {val_acc:.4f}")
    return val_acc


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20_000, help="training images to render")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="training seed; held-out set uses seed+1")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args(argv)
    train(args.samples, args.epochs, args.seed, args.out, batch_size=args.batch_size, lr=args.lr)


if __name__ == "__main__":
    main()
