"""Training throughput of the paper's recipe on this machine, and what a full run would take.

Measures, separately:

  (a) the network: ResNet-50 training steps (forward, BCE loss, backward, Adam) on random
      normalised tensors, at crop 224 (the paper) and 112, with the threads torch uses here;
  (b) the input pipeline on one core: decode a 256x256 JPEG, the paper's blur+JPEG
      augmentation (p = 0.5), random crop, flip, normalise -- what each DataLoader worker does.

Then prints the time of one epoch over ForenSynths' 720k training images on this CPU and an
estimate for one GPU, where throughput is the slower of the GPU's compute (a stated
assumption, ``--gpu-images-per-s``) and the input pipeline (measured here, times
``--gpu-workers`` cores).

Figures, not a test; a minute or two on 2 CPU cores:

    .venv/bin/python benchmarks/train_throughput.py
    .venv/bin/python benchmarks/train_throughput.py --steps 5 --batch-size 32 --json out.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from forensics_app.core.architectures import build_model  # noqa: E402
from forensics_app.core.loading import decode_image  # noqa: E402
from model_training.augment import AugmentConfig  # noqa: E402
from model_training.dataset import TrainTransform  # noqa: E402

RESNET50 = {"name": "resnet50", "num_outputs": 1, "input_transform": "none", "stages": 4}
FORENSYNTHS_TRAIN_IMAGES = 720_000  # 20 classes x 36k (18k real + 18k ProGAN)


def time_train_steps(crop: int, batch: int, steps: int, warmup: int = 1) -> dict:
    torch.manual_seed(0)
    model = build_model(RESNET50).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x = torch.randn(batch, 3, crop, crop)
    y = torch.randint(0, 2, (batch,)).float()
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss = loss_fn(model(x)[:, 0], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    per_step = float(np.median(times))
    return {"crop": crop, "batch": batch, "steps": steps, "seconds_per_step": per_step,
            "images_per_s": batch / per_step}


def time_input_pipeline(n: int, crop: int) -> dict:
    """Per-image cost of what one DataLoader worker does, on one thread."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(16):
        low = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        img = Image.fromarray(low).resize((256, 256), Image.BICUBIC)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        blobs.append(buf.getvalue())
    transform = TrainTransform(AugmentConfig(), crop_size=crop)
    pyrng = random.Random(0)
    t0 = time.perf_counter()
    for i in range(n):
        img, _ = decode_image(blobs[i % len(blobs)], "bench.jpg")
        transform(img, i, pyrng)
    seconds = time.perf_counter() - t0
    return {"crop": crop, "images": n, "ms_per_image": 1000 * seconds / n,
            "images_per_s_per_core": n / seconds}


def hours(images: int, per_s: float) -> float:
    return images / per_s / 3600


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2, help="timed steps per crop (after 1 warm-up)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--crops", default="224,112")
    p.add_argument("--pipeline-images", type=int, default=150)
    p.add_argument("--images", type=int, default=FORENSYNTHS_TRAIN_IMAGES,
                   help="training images per epoch for the estimates")
    p.add_argument("--gpu-images-per-s", type=float, default=1200.0,
                   help="assumed ResNet-50 224px training throughput of one GPU with AMP "
                        "(order of magnitude for an A100-class card; not measured here)")
    p.add_argument("--gpu-workers", type=int, default=16, help="CPU cores feeding that GPU")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    crops = [int(c) for c in args.crops.split(",")]
    threads = torch.get_num_threads()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# training throughput: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, {threads} threads, "
          f"load average {load:.1f} (figures are only clean on an idle machine)")
    results = {"threads": threads, "cores": os.cpu_count(), "torch": torch.__version__,
               "load_average": load,
               "network": [], "pipeline": [], "assumptions": {
                   "gpu_images_per_s_at_224": args.gpu_images_per_s,
                   "gpu_workers": args.gpu_workers, "images_per_epoch": args.images}}
    for crop in crops:
        r = time_train_steps(crop, args.batch_size, args.steps)
        results["network"].append(r)
        print(f"(a) ResNet-50 train step, crop {crop}, batch {r['batch']}: "
              f"{r['seconds_per_step']:.2f} s/step = {r['images_per_s']:.1f} images/s")
    for crop in crops:
        r = time_input_pipeline(args.pipeline_images, crop)
        results["pipeline"].append(r)
        print(f"(b) input pipeline (decode + blur/JPEG p=0.5 + crop {crop}), one core: "
              f"{r['ms_per_image']:.1f} ms/image = {r['images_per_s_per_core']:.0f} images/s")
    torch.set_num_threads(threads)

    print(f"\n# one epoch of {args.images:,} images")
    for net, pipe in zip(results["network"], results["pipeline"], strict=True):
        crop = net["crop"]
        # on this CPU the network and the decoding share the same cores
        cpu_rate = 1 / (1 / net["images_per_s"] + 1 / (pipe["images_per_s_per_core"] * threads))
        gpu_compute = args.gpu_images_per_s * (224 / crop) ** 2
        feed = pipe["images_per_s_per_core"] * args.gpu_workers
        gpu_rate = min(gpu_compute, feed)
        bound = "input pipeline" if feed < gpu_compute else "GPU compute"
        print(f"crop {crop}: this CPU ~{cpu_rate:.1f} images/s -> "
              f"{hours(args.images, cpu_rate):,.0f} h/epoch; one GPU (assumed "
              f"{gpu_compute:.0f} images/s) fed by {args.gpu_workers} cores "
              f"({feed:.0f} images/s) -> {gpu_rate:.0f} images/s, "
              f"{60 * hours(args.images, gpu_rate):.0f} min/epoch ({bound}-bound)")
        results.setdefault("estimates", []).append({
            "crop": crop, "cpu_images_per_s": cpu_rate,
            "cpu_hours_per_epoch": hours(args.images, cpu_rate),
            "gpu_images_per_s": gpu_rate, "gpu_minutes_per_epoch": 60 * hours(args.images, gpu_rate),
            "gpu_bound": bound,
        })
    print("A run lasts at least 16 epochs (5-epoch plateaus at lr 1e-4, 1e-5 and 1e-6 after "
          "the last improvement); multiply the per-epoch figures accordingly.")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
