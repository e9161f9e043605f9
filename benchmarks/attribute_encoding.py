"""What reading attributes out together saves (`loce analyze`'s ground-truth table, issue 14 demo time).

`attribute_encoding` scores each numeric attribute with a cross-validated ridge read-out and its chance level
with 3 shuffled copies. One sklearn `cross_val_score` per (attribute, copy) decomposes the same standardised
LoCEs 4 x attributes times per fold; `ridge_r2` fits all of them in one multi-target ridge per fold. This script
times both side by side on planted data shaped like the scene world (N LoCEs x C dims, 6 numeric attributes
carried by every LoCE, one carried by 70%), checks they agree and prints the ratio.

Run:  .venv/bin/python benchmarks/attribute_encoding.py                 (N = 2000, C = 192)
      .venv/bin/python benchmarks/attribute_encoding.py --n 2000 --dims 1280
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from loce.analysis.attributes import CHANCE_SHUFFLES, RIDGE_ALPHAS, attribute_encoding


def one_per_attribute(X: np.ndarray, frame: pd.DataFrame, seed: int = 0) -> dict[str, tuple[float, float]]:
    """The per-attribute formulation: one cross_val_score per attribute and shuffled copy."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = {}
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
    cv = KFold(5, shuffle=True, random_state=seed)
    for name in frame.columns:
        present = frame[name].notna().to_numpy()
        y, Xp = frame[name].to_numpy(float)[present], X[present]
        rng = np.random.default_rng(seed)
        score = cross_val_score(model, Xp, y, cv=cv, scoring="r2").mean()
        chance = np.mean([cross_val_score(model, Xp, rng.permutation(y), cv=cv, scoring="r2").mean()
                          for _ in range(CHANCE_SHUFFLES)])  # fmt: skip
        out[name] = (float(score), float(chance))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="LoCEs")
    parser.add_argument("--dims", type=int, default=192, help="LoCE dimension")
    parser.add_argument("--repeats", type=int, default=3, help="alternated timings of each")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.n, args.dims))
    columns = {f"attr{k}": X[:, k] + rng.normal(size=args.n) * (k + 1) * 0.3 for k in range(6)}
    columns["partial"] = np.where(rng.random(args.n) < 0.3, np.nan, X[:, 7])
    frame = pd.DataFrame(columns)
    old, new = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        reference = one_per_attribute(X, frame)
        old.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        table = attribute_encoding(X, frame).set_index("attribute")
        new.append(time.perf_counter() - t0)
    diff = max(
        abs(table.at[a, "score"] - s) + abs(table.at[a, "chance"] - c) for a, (s, c) in reference.items()
    )
    print(f"N={args.n} C={args.dims} attributes={frame.shape[1]}  (median of {args.repeats}, alternated)")
    print(f"  one cross_val_score per attribute and copy : {np.median(old):8.2f} s")
    print(f"  one multi-target ridge per fold            : {np.median(new):8.2f} s")
    print(f"  ratio old / new                            : {np.median(old) / np.median(new):8.1f}x")
    print(f"  max abs difference of score + chance       : {diff:.2e}")


if __name__ == "__main__":
    main()
