"""What the store's self-check costs next to the read it guards (issue 13).

Writes a run of N synthetic LoCE rows (256-dim vectors, 5 concepts x 2 layers per image, 100 images per shard;
seeded), then times side by side: the consistency check every reader runs once per opened store
(:func:`loce.store.integrity.inspect_store`: footers and key columns), a full vector read of the run
(``LoCEStore.vectors`` of both layers) and ``loce check``'s page-checksum pass (every page decoded). Prints
each time and the ratio check / vector read.

Run:  .venv/bin/python benchmarks/store_check.py             (N = 100,000 rows)
      .venv/bin/python benchmarks/store_check.py --rows 20000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from loce.store import JobSpec, LoCEStore
from loce.store.integrity import inspect_store


def write_run(run: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    per_shard = 100 * 5 * 2
    with LoCEStore.create(run) as store:
        store.register_job(JobSpec("j", model="m", layers=("l1", "l2"), settings_id="paper-0"))
        for shard in range(max(1, rows // per_shard)):
            store.append("j", [
                {"sample_id": f"s{shard}_{i}", "concept": c, "layer": layer, "status": "ok", "iou": 0.5,
                 "vector": rng.standard_normal(256).astype(np.float32)}
                for i in range(100) for c in "abcde" for layer in ("l1", "l2")
            ])  # fmt: skip


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "RUN"
        write_run(run, args.rows)
        store = LoCEStore.open(run)
        check, read, pages = [], [], []
        for _ in range(args.repeat):
            check.append(timed(lambda: inspect_store(run, store.manifest)))
            read.append(timed(lambda: [LoCEStore.open(run)._scan(["vector", "layer"], None)]))
            pages.append(timed(lambda: inspect_store(run, store.manifest, pages=True)))
        c, r, p = min(check), min(read), min(pages)
        print(f"{args.rows} rows: consistency check {c:.3f} s, full vector read {r:.3f} s, "
              f"page-checksum pass {p:.3f} s; check / vector read = {c / r:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
