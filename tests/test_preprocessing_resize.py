"""Resize modes: images and masks go through one Placement, so a mask stays aligned with the activation grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loce.capture import LayerCapture
from loce.preprocessing import RESIZE_MODES, Placement, Preprocessing


class InputIsActivation(torch.nn.Module):
    """Layer ``image``: the model input itself, so the ground truth of alignment is exact."""

    def __init__(self) -> None:
        super().__init__()
        self.image = torch.nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.image(x)


def _scene(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    image = np.zeros((height, width, 3), np.uint8)
    mask = np.zeros((height, width), bool)
    mask[10:40, 60:110] = True  # off-centre, so a wrong placement would move it
    image[mask] = 255
    return image, mask


def _on_grid(mask: np.ndarray, frame: tuple[int, int]) -> np.ndarray:
    tensor = torch.from_numpy(mask.astype(np.float32))[None, None]
    return torch.nn.functional.interpolate(tensor, size=frame, mode="nearest-exact")[0, 0].numpy() > 0.5


@pytest.mark.parametrize("mode", RESIZE_MODES)
@pytest.mark.parametrize("image_size, frame", [((60, 150), (48, 64)), ((90, 120), (64, 40))])
def test_mask_stays_aligned_with_the_activation_grid(mode, image_size, frame):
    image, mask = _scene(*image_size)
    prep = Preprocessing(size=frame, mean=(0.0,) * 3, std=(1.0,) * 3, resize=mode)
    acts = LayerCapture(InputIsActivation(), ["image"])(prep([image]))["image"][0, 0].numpy()
    framed = _on_grid(prep.frame_mask(mask), frame)  # stretch keeps the image's own mask: the whole grid
    assert acts.shape == frame
    bright = acts > 0.5
    iou = (bright & framed).sum() / (bright | framed).sum()
    assert iou > 0.9, (mode, iou)
    if mode != "stretch":  # the stretched mask (the old rule) is misaligned under this mode
        resized = _on_grid(mask, frame)
        assert (bright & resized).sum() / (bright | resized).sum() < iou - 0.05


def test_placement_of_each_mode_by_hand():
    assert Placement.of((100, 200), (50, 50), "stretch") == Placement((50, 50), (0, 0), (50, 50))
    assert Placement.of((100, 200), (50, 50), "letterbox") == Placement((25, 50), (12, 0), (50, 50))
    assert Placement.of((100, 200), (50, 50), "shorter-side-crop") == Placement((50, 100), (0, -25), (50, 50))


def test_resize_mode_is_recorded_and_read_back():
    prep = Preprocessing(size=(32, 48), resize="letterbox")
    assert prep.to_dict()["resize"] == "letterbox" and Preprocessing.from_dict(prep.to_dict()) == prep
    assert Preprocessing().to_dict()["resize"] == "bilinear-stretch"  # older runs keep their description


def test_steps_that_align_masks_with_the_whole_image_refuse_other_modes(tmp_path):
    from loce.baselines.run import embed_run
    from loce.data import load_coco
    from loce.errors import InputError
    from loce.models import load_model
    from planted_data import write_planted_coco

    ann, images = write_planted_coco(tmp_path / "data", n=1)
    model = load_model(InputIsActivation(), preprocessing=Preprocessing(size=(64, 64), resize="letterbox"))
    with pytest.raises(InputError, match="supports only --resize stretch, not 'letterbox'"):
        embed_run(
            load_coco(ann, images), model, ["image"], tmp_path / "run", method="masked-pool", progress=False
        )
    assert not (tmp_path / "run").exists()
