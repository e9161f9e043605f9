"""Fit speed on the CPU vs a GPU (or another device), side by side in one run, with the fit's peak GPU memory.

The same planted problems as benchmarks/fit_speed.py (naive_reference.planted_problem: a known vector reconstructs
each mask) are fitted with ``LoCEFitter("paper")`` on the CPU and on ``--device``; prints the time per LoCE on each,
their ratio, the largest |difference| of the vectors and, on CUDA, the peak memory the fit allocated
(``torch.cuda.max_memory_allocated``) with the chunk size chosen from the free memory. scripts/gpu-check.sh runs it.

    python benchmarks/fit_devices.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from naive_reference import planted_problem  # noqa: E402

from loce.fit import LoCEFitter  # noqa: E402
from loce.fit.fitter import chunk_elements  # noqa: E402

CONFIGS = ((80, 14), (192, 7), (768, 14))


def timed_fit(acts: torch.Tensor, masks: list, device: str, repeats: int) -> tuple[float, np.ndarray]:
    LoCEFitter("paper", device=device).fit(acts[:2], masks[:2])  # warm-up (kernels, caches)
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fitter = LoCEFitter("paper", device=device).fit(acts, masks)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), fitter.embeddings_


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--device", default="cuda", help="the device compared with the CPU (cuda, cuda:1, mps)"
    )
    parser.add_argument("--batch", type=int, default=256, help="samples per configuration")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs per device (the median is reported)"
    )
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"no CUDA device: torch {torch.__version__} sees none; nothing to compare", file=sys.stderr)
        return 2
    print(f"{'C x hw':>10} {'cpu ms/LoCE':>12} {args.device + ' ms/LoCE':>16} {'ratio':>7} {'max|dv|':>9} "
          f"{'peak GPU MB':>12} {'chunk elems':>12}")  # fmt: skip
    for c, hw in CONFIGS:
        problem = planted_problem(args.batch, c, hw, hw, seed=c)
        acts, masks = problem.activations, problem.masks
        cpu_s, cpu_v = timed_fit(acts, masks, "cpu", args.repeats)
        peak = float("nan")
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(args.device)
        dev_s, dev_v = timed_fit(acts, masks, args.device, args.repeats)
        if args.device.startswith("cuda"):
            peak = torch.cuda.max_memory_allocated(args.device) / 2**20
        print(f"{c:>5} x {hw:<2}  {1e3 * cpu_s / args.batch:>12.2f} {1e3 * dev_s / args.batch:>16.3f} "
              f"{cpu_s / dev_s:>7.1f} {np.abs(cpu_v - dev_v).max():>9.2e} {peak:>12.0f} "
              f"{chunk_elements(torch.device(args.device)):>12d}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
