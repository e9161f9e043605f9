"""CUDA chunk sizes follow the free GPU memory (torch.cuda.mem_get_info), not a constant."""

from __future__ import annotations

import torch

from loce.fit import LoCEFitter
from loce.fit.fitter import CHUNK_ELEMENTS, CUDA_BYTES_PER_ELEMENT, CUDA_FREE_SHARE, chunk_elements


def test_cuda_chunks_scale_with_free_memory(monkeypatch):
    cuda = torch.device("cuda")
    free = {"bytes": 2 << 30}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free["bytes"], 80 << 30))
    fitter = LoCEFitter("paper")
    c, hw, grid, b = 80, 14 * 14, 100, 100_000
    per_sample = c * hw + 4 * grid * grid
    sizes = {}
    for gib in (2, 16):
        free["bytes"] = gib << 30
        assert chunk_elements(cuda) == int((gib << 30) * CUDA_FREE_SHARE) // CUDA_BYTES_PER_ELEMENT
        sizes[gib] = fitter._chunk_size(b, c, hw, grid, cuda, workers=1)
        # a chunk's budgeted memory stays within the share of free memory it was sized for
        assert sizes[gib] * per_sample * CUDA_BYTES_PER_ELEMENT <= (gib << 30) * CUDA_FREE_SHARE * 1.01
    assert 7.5 < sizes[16] / sizes[2] < 8.5
    assert (
        chunk_elements(torch.device("cpu")) == CHUNK_ELEMENTS["cpu"]
    )  # the CPU keeps its cache-sized chunks
