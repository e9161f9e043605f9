"""How long an offline request for uncached pretrained weights takes to fail (issue 15.4: under 5 s; it was 54 s
for timm and 28 s for Hugging Face, spent on retries).

Empty torch / Hugging Face caches (temporary TORCH_HOME, HF_HOME). Each spec is timed twice in one run, side by
side: with ``LOCE_OFFLINE=1`` (decided from the environment) and without it (one connection probe to the host;
run it on a machine without internet to see the probe path). The libraries are imported before timing, so the
figure is loce's refusal alone; the import time is printed separately.

Run:  .venv/bin/python benchmarks/offline_weights.py
"""

from __future__ import annotations

import os
import tempfile
import time

SPECS = (
    "timm:vit_small_patch16_224@pretrained",
    "torchvision:resnet50@DEFAULT",
    "hf:google/vit-base-patch16-224",
)


def main() -> None:
    cache = tempfile.mkdtemp(prefix="loce-empty-cache-")
    os.environ["TORCH_HOME"] = os.path.join(cache, "torch")
    os.environ["HF_HOME"] = os.path.join(cache, "hf")
    t0 = time.perf_counter()
    import timm  # noqa: F401
    import torchvision  # noqa: F401
    import transformers  # noqa: F401

    from loce.errors import ModelSpecError
    from loce.models import load_model

    print(f"imports: {time.perf_counter() - t0:.1f} s")
    for offline in ("1", ""):
        os.environ["LOCE_OFFLINE"] = offline
        for spec in SPECS:
            start = time.perf_counter()
            try:
                load_model(spec)
                outcome = "loaded (weights were reachable)"
            except ModelSpecError as exc:
                outcome = str(exc)[:90] + "..."
            mode = "LOCE_OFFLINE=1" if offline else "probe"
            print(f"{mode:>14}  {spec:<40} {time.perf_counter() - start:6.2f} s  {outcome}")


if __name__ == "__main__":
    main()
