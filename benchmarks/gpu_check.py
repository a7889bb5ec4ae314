"""Train the default job on the GPU (if any) and print device, seconds, accuracy and throughput.

Usage (from the repo root)::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/gpu_check.py [--data-root ../shared/data]
        [--data-source sample] [--cpu-steps 20]

With a GPU (CUDA, else Apple MPS) it trains the service's default encoder job
(``EncoderTrainer()`` with its ``defaults``) on the bundled sample and on the cookbook's MASSIVE
subset (``../shared/data/massive_en``, when present), then prints the device, the training
seconds, the test accuracy and the classification throughput (texts/s in batches of 64), and
checks that the saved model loads and predicts the same on the CPU. Without a GPU it says so and
still runs a tiny check (``--cpu-steps`` 20 steps on the sample) on the CPU, so the script is
tested everywhere. ``--data-source`` replaces the bundled sample by a folder in the mteb schema
(the smoke tests' tiny data).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# helpers (and torch with it) is imported where it is used, after the arguments are parsed:
# ``--help`` stays fast.


def check(name: str, source: str, device: str, steps: int | None) -> dict:
    from helpers.data import load_splits
    from helpers.factory.trainers.base import Example, TargetSpec, TrainConfig
    from helpers.factory.trainers.encoder import EncoderPredictor, EncoderTrainer

    splits = load_splits(source)
    labels = sorted(splits.train["label_text"].unique())
    train = [
        Example(t, {"intent": y})
        for t, y in zip(splits.train["text"], splits.train["label_text"], strict=True)
    ]
    test_x, test_y = list(splits.test["text"]), list(splits.test["label_text"])
    trainer = EncoderTrainer(device=device)
    config = (
        trainer.defaults
        if steps is None
        else TrainConfig(
            steps,
            trainer.defaults.learning_rate,
            trainer.defaults.weight_decay,
            trainer.defaults.warmup_fraction,
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        trainer.train(
            train, None, [TargetSpec("intent", labels, False)], config, Path(tmp), lambda r: None
        )
        seconds = time.perf_counter() - t0
        predictor = trainer.load(Path(tmp))
        predictor.predict(test_x[:64])  # warm-up
        t1 = time.perf_counter()
        scores = predictor.predict(test_x)
        throughput = len(test_x) / (time.perf_counter() - t1)
        pred = [max(s["intent"], key=s["intent"].__getitem__) for s in scores]
        accuracy = sum(p == y for p, y in zip(pred, test_y, strict=True)) / len(test_y)
        on_cpu = EncoderPredictor.load(Path(tmp), device="cpu").predict(test_x[:32])
        same = sum(
            max(a["intent"], key=a["intent"].__getitem__) == b
            for a, b in zip(on_cpu, pred[:32], strict=True)
        )
    row = {
        "data": name,
        "device": trainer.device,
        "train_rows": len(train),
        "steps": config.training_steps,
        "train_seconds": round(seconds, 1),
        "test_accuracy": round(100 * accuracy, 2),
        "throughput_per_s": round(throughput, 1),
        "cpu_reload_agreement": f"{same}/32",
    }
    print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    ap.add_argument(
        "--data-source",
        default="sample",
        help="the first check's data: the bundled sample, or a folder in the mteb schema",
    )
    ap.add_argument("--cpu-steps", type=int, default=20, help="steps of the check without a GPU")
    args = ap.parse_args()

    from helpers.factory.trainers.device import select_device

    name = "sample" if args.data_source == "sample" else Path(args.data_source).name
    device = select_device("auto")
    if device.type == "cpu":
        print("no GPU found (torch sees neither CUDA nor MPS): running a tiny CPU check only")
        check(name, args.data_source, "cpu", steps=args.cpu_steps)
        return
    print(
        f"GPU found: {device.type}"
        + (f" ({__import__('torch').cuda.get_device_name(0)})" if device.type == "cuda" else "")
    )
    check(name, args.data_source, device.type, steps=None)
    massive = args.data_root / "massive_en"
    if massive.is_dir():
        check("massive_en", str(massive), device.type, steps=None)
    else:
        print(f"{massive} not found: skipped the MASSIVE run")


if __name__ == "__main__":
    main()
