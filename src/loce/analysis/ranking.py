"""Exact ranking kernels on one score block (rows = queries, columns = all candidates, higher = closer).

Both kernels rank candidates by descending score and break ties by the lower ``col_key`` (the original index),
so their results do not depend on the block size or on the order of the columns.
"""

from __future__ import annotations

import numpy as np

TOPK_MARGIN = 8
LINEAR_SCAN_LIMIT = 16  # relevant scores per cell up to which candidates are compared one by one
MAX_CELLS = (1 << 16) - 3  # grid cells per row for average precision (cell ids fit in uint16)


def _exact_top_k_row(row: np.ndarray, k: int, col_key: np.ndarray) -> np.ndarray:
    """Columns of the ``k`` best candidates of one row, ties by lower key (reference path, any ties)."""
    kth = np.partition(row, row.size - k)[row.size - k]
    candidates = np.flatnonzero(row >= kth)
    order = np.lexsort((col_key[candidates], -row[candidates]))
    return candidates[order[:k]]


def top_k_block(S: np.ndarray, k: int, col_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` highest-scoring columns of every row of ``S``, best first, ties broken by lower ``col_key``.

    Uses ``torch.topk`` for ``k + 8`` candidates, then reorders them exactly; a row whose k-th score is tied with
    candidates that may lie outside that set falls back to an exact full-row selection.

    Args:
        S: m x N scores.
        k: 1 <= k <= N.
        col_key: N distinct ints, the tie-break key of each column.

    Returns:
        ``(columns, scores)``, both m x k.

    Example:
        >>> cols, _ = top_k_block(np.array([[0.5, 0.9, 0.5, 0.1]], np.float32), 2, np.arange(4))
        >>> cols.tolist()
        [[1, 0]]
    """
    import torch

    m, n = S.shape
    cols = np.empty((m, k), dtype=np.int64)
    if k + TOPK_MARGIN >= n:
        exact_rows = np.arange(m)
    else:
        values, candidates = torch.topk(
            torch.from_numpy(S), k + TOPK_MARGIN, dim=1, largest=True, sorted=True
        )
        values, candidates = values.numpy(), candidates.numpy()
        # if the k-th value is strictly above the last candidate, every column tied with it is a candidate
        exact_rows = np.flatnonzero(values[:, k - 1] <= values[:, -1])
        order = np.lexsort((col_key[candidates], -values), axis=1)[:, :k]
        cols[:] = np.take_along_axis(candidates, order, axis=1)
    for i in exact_rows:
        cols[i] = _exact_top_k_row(S[i], k, col_key)
    return cols, np.take_along_axis(S, cols, axis=1)


def average_precision_block(
    S: np.ndarray,
    rel_start: int,
    rel_stop: int,
    col_key: np.ndarray,
    *,
    self_in_block: bool = True,
    n_cells: int | None = None,
) -> np.ndarray:
    """Exact average precision of each row's ranking of all N columns, relevant = columns ``rel_start:rel_stop``.

    Every relevant column's rank is needed, but a full sort of each row is not (that costs ~N log N per row).
    Per row, the relevant scores are sorted (one concept's worth) and every score is mapped to a cell of an
    equal-width grid spanning the relevant scores (cell 0 above them, the last cell below). A histogram of the
    cells counts the irrelevant scores above each relevant one, cell by cell; only irrelevant scores that share a
    cell with relevant ones are placed exactly, by binary search among the sorted relevant scores. One
    monotone map computes the cells of all scores (a higher score never gets a higher cell), so the result is
    exact, with ties broken by the lower ``col_key``.

    Args:
        S: m x N scores. With ``self_in_block`` each row holds its own query column inside the relevant block,
            set to ``-inf`` by the caller (leave-one-out); it is excluded.
        rel_start, rel_stop: the relevant columns; ``col_key`` must increase along them.
        col_key: N ints, the tie-break key of each column.
        n_cells: grid resolution (default: the number of irrelevant columns, at most ``MAX_CELLS``).

    Returns:
        m average precisions; NaN for rows without any relevant column.
    """
    m, n = S.shape
    n_rel = rel_stop - rel_start - (1 if self_in_block else 0)
    if n_rel <= 0:
        return np.full(m, np.nan)
    g = int(n_cells or min(max(16, n - (rel_stop - rel_start)), MAX_CELLS))
    order = np.argsort(-S[:, rel_start:rel_stop], axis=1, kind="stable")[:, :n_rel]  # self (-inf) sorts last
    position = np.arange(1, n_rel + 1, dtype=np.float64)
    out = np.empty(m)
    for i in range(m):
        above = _irrelevant_above(S[i], rel_start, rel_stop, order[i], col_key, g, self_in_block)
        out[i] = (position / (position + above)).mean()
    return out


def _irrelevant_above(row, rel_start, rel_stop, order, col_key, g, self_in_block):
    """For the relevant scores of one row in ranking order, the number of irrelevant scores ranked above each."""
    n_rel = order.size
    rel_values = row[rel_start + order]  # descending
    rel_keys = col_key[rel_start + order]
    hi, span = float(rel_values[0]), float(rel_values[0]) - float(rel_values[-1])
    scale = g / span if span > 0 and g / span < 1e30 else 1.0
    # cell = clip(trunc((hi - v) * scale + 1), 0, g + 2): non-increasing in v; v > hi -> 0; relevant -> 1 .. g + 1
    t = np.subtract(np.float32(hi) if row.dtype == np.float32 else hi, row)
    t *= row.dtype.type(scale)
    t += 1
    np.clip(t, 0, g + 2, out=t)
    cells = t.astype(np.uint16 if g + 3 <= 1 << 16 else np.int32)  # truncation is monotone
    n_buckets = g + 3
    rel_cells = cells[rel_start + order]  # non-decreasing
    rel_count = np.bincount(rel_cells, minlength=n_buckets)
    shared = rel_count > 0
    # irrelevant scores per cell, counting only cells without relevant scores (all relevant scores are in
    # shared cells); the query itself (-inf) sits in the bottom cell
    counts = np.bincount(cells, minlength=n_buckets)
    if self_in_block:
        counts[g + 2] -= 1
    counts[shared] = 0
    np.cumsum(counts, out=counts)
    above = counts[rel_cells - 1]
    first = np.cumsum(rel_count) - rel_count  # position of each cell's first relevant score
    # irrelevant scores sharing a cell with relevant ones: placed exactly among the sorted relevant scores
    candidates = shared.take(cells)
    candidates[rel_start:rel_stop] = False
    members = np.flatnonzero(candidates)
    if members.size:
        values, keys, member_cells = row[members], col_key[members], cells[members]
        start = first[member_cells]
        placed = start.copy()  # -> number of relevant scores ranked above each candidate
        in_cell = rel_count[member_cells]
        # few relevant scores per cell (the usual case): compare with each of them; many: binary search
        scan = np.flatnonzero(in_cell <= LINEAR_SCAN_LIMIT)
        for j in range(int(in_cell[scan].max(initial=0))):
            scan = scan[in_cell[scan] > j]
            at = start[scan] + j  # the cell's j-th relevant score
            r_val, v = rel_values[at], values[scan]
            placed[scan] += (r_val > v) | ((r_val == v) & (rel_keys[at] < keys[scan]))
        search = np.flatnonzero(in_cell > LINEAR_SCAN_LIMIT)
        if search.size:
            descending = -rel_values  # ascending
            v = -values[search]
            low = np.searchsorted(descending, v, side="left")  # relevant strictly above
            high = np.searchsorted(descending, v, side="right")
            tied = np.flatnonzero(high > low)  # equal scores: relevant ones with a lower key rank above
            for value in np.unique(v[tied]):  # usually a handful of values (zero vectors: all of them are 0)
                same = tied[v[tied] == value]
                lo, hi = low[same[0]], high[same[0]]
                low[same] += np.searchsorted(rel_keys[lo:hi], keys[search[same]])
            placed[search] = low
        above = above + np.cumsum(np.bincount(placed, minlength=n_rel + 1))[:n_rel]
    return above
