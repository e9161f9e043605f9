"""Scene-world generation speed (issue 3): N scenes at 224 x 224 with a pool of worker processes.

Prints the wall time of ``generate_scenes`` (the target: 500 scenes in under 2 minutes on 2 cores), scenes per
second, the CPU time the workers spent per scene, and, measured in the same run in one process, what measuring
occlusion costs: rendering with every object also rendered alone (the default) against the scene image only,
as a ratio. Shared machines drift 2-5x between runs: read the ratio, and the wall time together with the
machine's load average printed beside it.

    python benchmarks/scenes_speed.py                  # 500 scenes, 2 workers
    python benchmarks/scenes_speed.py --n 100 --workers 1
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

from loce.scenes import generate_scenes, render_scene, sample_scene


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--compare", type=int, default=30, help="scenes for the with / without occlusion comparison"
    )
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        cpu0, t0 = _children_cpu(), time.perf_counter()
        generate_scenes(tmp, n=args.n, seed=0, size=args.size, progress=False, workers=args.workers)
        wall = time.perf_counter() - t0
        cpu = _children_cpu() - cpu0
    print(
        f"generate_scenes: {args.n} scenes at {args.size} px, {args.workers} workers: {wall:.1f} s wall "
        f"({args.n / wall:.1f} scenes/s); worker CPU {1000 * cpu / args.n:.0f} ms per scene"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")

    specs = [sample_scene(1, i, size=args.size) for i in range(args.compare)]
    render_scene(specs[0])  # warm-up: textures and meshes loaded once per process
    timings: dict[bool, float] = {}
    for alone in (True, False, True, False):
        t0 = time.process_time()
        for spec in specs:
            render_scene(spec, alone=alone)
        timings[alone] = min(timings.get(alone, float("inf")), (time.process_time() - t0) / len(specs))
    print(
        f"render per scene (one process, CPU): with objects alone {1000 * timings[True]:.1f} ms, "
        f"image only {1000 * timings[False]:.1f} ms, ratio {timings[True] / timings[False]:.2f}"
    )


if __name__ == "__main__":
    main()
