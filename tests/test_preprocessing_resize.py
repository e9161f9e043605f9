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


def test_localize_refuses_other_modes(tmp_path):
    from loce.errors import InputError
    from loce.localize.engine import localize_samples
    from loce.localize.vectors import ConceptVector
    from loce.models import load_model

    model = load_model(InputIsActivation(), preprocessing=Preprocessing(size=(64, 64), resize="letterbox"))
    vector = ConceptVector("box", "image", "mean", np.ones(3, np.float32))
    with pytest.raises(InputError, match="supports only --resize stretch, not 'letterbox'"):
        localize_samples(model, [vector], [], progress=False)


def _folder_scene(root, height: int = 60, width: int = 150):
    """A folder dataset of one wide image: a white box (concept ``box``) off-centre on black."""
    from PIL import Image

    image, mask = _scene(height, width)
    (root / "images").mkdir(parents=True)
    (root / "masks" / "wide").mkdir(parents=True)
    Image.fromarray(image).save(root / "images" / "wide.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(root / "masks" / "wide" / "box.png")
    return image, mask


@pytest.mark.parametrize("mode", ["letterbox", "shorter-side-crop"])
@pytest.mark.parametrize("method", ["masked-pool", "window", "global"])
def test_baselines_read_the_activations_under_the_mask_in_every_resize_mode(tmp_path, mode, method):
    from loce.baselines.run import embed_run
    from loce.data import load_folder
    from loce.models import load_model
    from loce.store import LoCEStore

    image, mask = _folder_scene(tmp_path / "data")
    prep = Preprocessing(size=(64, 64), mean=(0.0,) * 3, std=(1.0,) * 3, resize=mode)
    model = load_model(InputIsActivation(), preprocessing=prep)
    embed_run(load_folder(tmp_path / "data"), model, ["image"], tmp_path / "run", method=method,
              progress=False, activation_cache=False)  # fmt: skip
    vector = np.array(
        LoCEStore.open(tmp_path / "run").frame(columns=["vector"])["vector"].iloc[0], dtype=np.float32
    )
    acts = prep([image])[0].numpy()  # the white box in the model's input: 1.0, the rest 0.0
    framed = prep.frame_mask(mask)
    if method == "masked-pool":  # the mean under the mask: white when the mask is where the box landed
        assert vector.min() > 0.9
        if mode == "letterbox":  # the old rule (the whole image on the grid) misses the box there
            assert acts[:, _on_grid(mask, (64, 64))].mean() < 0.8
    elif (
        method == "window"
    ):  # the 3 x 3 cells around the box's centre in the input frame: inside the white box
        np.testing.assert_allclose(vector, 1.0, atol=1e-5)
    else:  # one fitted vector whose projection must light up the box where it landed in the input
        from loce.fit import project

        maps = project(torch.as_tensor(vector)[None], torch.as_tensor(acts)[None])[0].numpy() > 0.5
        assert (maps & framed).sum() / (maps | framed).sum() > 0.8
