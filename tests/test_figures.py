"""Figures: each function draws what its inputs say, on tiny synthetic inputs with known structure."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("matplotlib")

from matplotlib.collections import LineCollection, PathCollection, PolyCollection  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402
from scipy.cluster.hierarchy import leaves_list, linkage  # noqa: E402

from loce.figures import (  # noqa: E402
    Tile,
    cluster_gallery,
    concept_colors,
    concept_mixture_panels,
    covariance_ellipse,
    dendrogram_figure,
    embedding_map,
    group_gallery,
    image_grid,
    iou_distributions,
    matrix_heatmaps,
    precision_at_k_curves,
    retrieval_gallery,
    save_figure,
)
from loce.figures.colors import hex_to_rgb  # noqa: E402

NAMES = ["car", "bus", "person"]
CENTERS = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])


@pytest.fixture
def planted():
    rng = np.random.default_rng(0)
    xy = np.concatenate([rng.normal(c, 0.5, (20, 2)) for c in CENTERS])
    labels = [n for n in NAMES for _ in range(20)]
    return xy, labels


def _nearest_center(points: np.ndarray) -> np.ndarray:
    d = ((points[:, None, :] - CENTERS[None]) ** 2).sum(-1)
    return np.asarray(NAMES)[d.argmin(1)]


def test_importing_figures_does_not_import_matplotlib():
    code = "import sys, loce.figures; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_concept_colors_depend_on_the_set_of_names_not_their_order():
    a = concept_colors(["zebra", "car", "bus", "car"])
    b = concept_colors(["bus", "zebra", "car"])
    assert a == b
    assert list(a) == ["bus", "car", "zebra"]
    many = concept_colors([f"c{i:02d}" for i in range(40)])
    assert len(set(many.values())) == 40
    assert all(len(c) == 7 and c.startswith("#") for c in many.values())


def test_eighty_concepts_get_clearly_distinct_colours_neither_too_dark_nor_too_light():
    from skimage.color import deltaE_ciede2000, rgb2lab

    from loce.figures.colors import hex_to_rgb

    for n, least in ((11, 8.0), (80, 5.0)):
        colors = list(concept_colors([f"concept_{i:02d}" for i in range(n)]).values())
        lab = rgb2lab(np.array([hex_to_rgb(c) for c in colors])[None])[0]
        distance = deltaE_ciede2000(lab[:, None, :], lab[None, :, :])
        np.fill_diagonal(distance, np.inf)
        assert distance.min() > least, (n, distance.min())  # the generated hues of before: 0.78 at 80
        assert ((lab[:, 0] > 25) & (lab[:, 0] < 88)).all()


def test_covariance_ellipse_matches_hand_computed_axes_and_angle():
    assert covariance_ellipse(np.array([1.0, 2.0]), np.diag([4.0, 1.0]), 2.0) == ((1.0, 2.0), 8.0, 4.0, 0.0)
    r = np.array([[np.cos(np.pi / 4), -np.sin(np.pi / 4)], [np.sin(np.pi / 4), np.cos(np.pi / 4)]])
    _, width, height, angle = covariance_ellipse(np.zeros(2), r @ np.diag([9.0, 1.0]) @ r.T, 1.0)
    assert width == pytest.approx(6.0) and height == pytest.approx(2.0) and angle == pytest.approx(45.0)


def test_embedding_map_per_concept_ellipses_regions_and_points(planted):
    xy, labels = planted
    colors = concept_colors(labels)
    covs = np.stack([np.diag([0.25, 0.25])] * 3)
    fig = embedding_map(
        xy,
        labels,
        means=CENTERS,
        covariances=covs,
        component_labels=NAMES,
        predict=_nearest_center,
        n_std=(1.0, 2.0),
        resolution=60,
    )
    ax = fig.axes[0]
    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    assert len(ellipses) == 6  # 3 components x 2 levels
    assert sorted(round(e.width, 6) for e in ellipses) == [1.0] * 3 + [2.0] * 3
    for e in ellipses:  # each ellipse in the colour of the concept whose mean it circles
        concept = NAMES[int(np.argmin(np.linalg.norm(CENTERS - np.asarray(e.center), axis=1)))]
        assert e.get_edgecolor()[:3] == pytest.approx(hex_to_rgb(colors[concept]))
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert sorted(len(c.get_offsets()) for c in scatters) == [20, 20, 20]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == sorted(NAMES)
    # The decision-region image is coloured, at each concept's centre, by that concept.
    (image,) = [im for im in ax.get_images() if isinstance(im, AxesImage)]
    rgba = image.get_array()
    x0, x1, y0, y1 = image.get_extent()
    for name, (cx, cy) in zip(NAMES, CENTERS):
        col = int(round((cx - x0) / (x1 - x0) * (rgba.shape[1] - 1)))
        row = int(round((cy - y0) / (y1 - y0) * (rgba.shape[0] - 1)))
        np.testing.assert_allclose(rgba[row, col, :3], hex_to_rgb(colors[name]))


def test_embedding_map_label_agnostic_components_are_black_and_faint_when_light(planted):
    xy, labels = planted
    fig = embedding_map(
        xy,
        labels,
        means=CENTERS,
        covariances=np.stack([np.eye(2)] * 3),
        weights=[0.6, 0.38, 0.02],
        legend=False,
    )
    ellipses = [p for p in fig.axes[0].patches if isinstance(p, Ellipse)]
    assert len(ellipses) == 3
    assert all(e.get_edgecolor()[:3] == pytest.approx((34 / 255,) * 3) for e in ellipses)
    assert [e.get_linestyle() for e in ellipses].count("--") == 1
    assert fig.axes[0].get_images() == []


def test_mixture_panels_one_panel_per_concept_with_only_its_own_components(planted):
    xy, labels = planted
    colors = concept_colors(labels)
    # car: two components (one light), bus: one, person: none asked for (panel shows its points only)
    means = np.array([[0.0, 0.0], [0.5, 0.5], [6.0, 0.0]])
    owners = ["car", "car", "bus"]
    fig = concept_mixture_panels(
        xy,
        labels,
        means=means,
        covariances=np.stack([np.eye(2) * 0.25] * 3),
        component_labels=owners,
        weights=[0.95, 0.05, 1.0],
        concepts=["car", "bus"],
        colors=colors,
        columns=6,
    )
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().split(" · ")[0] for ax in visible] == ["car", "bus"]
    for ax, concept in zip(visible, ["car", "bus"]):
        ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
        mine = [m for m, o in zip(means, owners) if o == concept]
        assert sorted(tuple(np.round(e.center, 6)) for e in ellipses) == sorted(tuple(m) for m in mine)
        grey, own = [c for c in ax.collections if isinstance(c, PathCollection)]
        assert len(own.get_offsets()) == 20 and len(grey.get_offsets()) == 40  # its LoCEs over all others
        assert own.get_facecolor()[0][:3] == pytest.approx(hex_to_rgb(colors[concept]))
    car = [p for p in visible[0].patches if isinstance(p, Ellipse)]
    assert sorted(e.get_linestyle() for e in car) == ["-", "--"]  # the light component is dashed


def test_embedding_map_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="N x 2"):
        embedding_map(np.zeros((3, 2)), ["a", "b"])


def test_dendrogram_strip_has_one_cell_per_leaf_in_leaf_order(planted):
    xy, labels = planted
    z = linkage(xy, "ward")
    clusters = _nearest_center(xy)
    fig = dendrogram_figure(z, labels, purity=0.95, n_clusters=3, clusters=list(clusters), title="layer 3")
    ax_tree, ax_strip, ax_clusters = fig.axes
    assert "purity 0.950" in ax_tree.get_title() and "3 clusters" in ax_tree.get_title()
    (lines,) = [c for c in ax_tree.collections if isinstance(c, LineCollection)]
    assert len(lines.get_segments()) == len(xy) - 1
    colors = concept_colors(labels)
    cells = ax_strip.get_images()[0].get_array()
    assert cells.shape == (1, len(xy), 3)
    expected = np.array([hex_to_rgb(colors[labels[i]]) for i in leaves_list(z)])
    np.testing.assert_allclose(cells[0], expected)
    assert ax_clusters.get_images()[0].get_array().shape == (1, len(xy), 3)


def test_dendrogram_rejects_a_linkage_of_another_size(planted):
    xy, labels = planted
    with pytest.raises(ValueError, match="shape"):
        dendrogram_figure(linkage(xy[:10]), labels)


def test_heatmaps_share_one_colour_scale():
    a = np.array([[np.nan, 0.2, 0.4], [0.2, np.nan, 0.1], [0.4, 0.1, np.nan]])
    fig = matrix_heatmaps({"layer 1": a, "layer 2": a * 3, "layer 3": a / 2}, NAMES, label="separation")
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 3
    for im in images:
        assert (im.norm.vmin, im.norm.vmax) == (pytest.approx(0.05), pytest.approx(1.2))
    assert len(fig.axes) == 4  # three panels + one shared colour bar
    assert [ax.get_title() for ax in fig.axes[:3]] == ["layer 1", "layer 2", "layer 3"]
    assert images[0].get_array().mask[0, 0]  # NaN cells stay blank
    texts = [t.get_text() for t in fig.axes[1].texts]
    assert len(texts) == 6 and "1.20" in texts


def test_heatmaps_reject_a_matrix_of_the_wrong_size():
    with pytest.raises(ValueError, match="expected \\(3, 3\\)"):
        matrix_heatmaps([np.zeros((2, 2))], NAMES)


def test_precision_curves_one_panel_per_model_one_line_and_band_per_layer():
    rows = []
    for m, model in enumerate(["m1", "m2"]):
        for lay, layer in enumerate(["a", "b", "c"]):
            for k in (1, 5, 10):
                for q in range(4):
                    rows.append(
                        {"model": model, "layer": layer, "k": k, "precision": 0.1 * lay + 0.01 * q + m * 0.3}
                    )
    fig = precision_at_k_curves(pd.DataFrame(rows), band="std")
    assert [ax.get_title() for ax in fig.axes] == ["m1", "m2"]
    for m, ax in enumerate(fig.axes):
        assert len(ax.get_lines()) == 3
        assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 3
        line_c = next(line for line in ax.get_lines() if line.get_label() == "c")
        np.testing.assert_allclose(line_c.get_ydata(), [0.2 + 0.015 + 0.3 * m] * 3)


def test_precision_curves_accept_precomputed_bands_and_need_some_values():
    frame = pd.DataFrame(
        {"layer": ["x", "x"], "k": [1, 5], "mean": [0.5, 0.4], "lower": [0.4, 0.3], "upper": [0.6, 0.5]}
    )
    fig = precision_at_k_curves(frame)
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [0.5, 0.4])
    with pytest.raises(ValueError, match="precision"):
        precision_at_k_curves(frame.drop(columns=["mean"]))


def test_iou_distributions_one_row_per_layer_one_body_per_concept():
    rng = np.random.default_rng(1)
    rows = [
        {"concept": c, "layer": lay, "iou": float(v)}
        for lay in ("l1", "l2")
        for c in NAMES
        for v in rng.uniform(0.2, 0.9, 15)
    ]
    rows += [{"concept": "car", "layer": "l1", "iou": 0.0}, {"concept": "lonely", "layer": "l1", "iou": 0.5}]
    fig = iou_distributions(pd.DataFrame(rows))
    assert len(fig.axes) == 2
    bodies = [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    assert len(bodies) == 3  # "lonely" has a single value: points only, no violin
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert "car\nn=16, 1 at 0" in labels and "lonely\nn=1" in labels
    fig_box = iou_distributions(pd.DataFrame(rows), kind="box")
    assert len(fig_box.axes) == 2


def _contour_bbox(ax):
    verts = np.concatenate(
        [p.vertices for c in ax.collections if not isinstance(c, PathCollection) for p in c.get_paths()]
    )
    return verts.min(0), verts.max(0)


def test_image_grid_outlines_the_mask_exactly():
    image = np.full((20, 24, 3), 128, np.uint8)
    mask = np.zeros((20, 24), bool)
    mask[4:12, 6:14] = True  # rows 4..11, columns 6..13
    fig = image_grid([Tile(image, mask, title="a.jpg", color="#ff0000")])
    ax = fig.axes[0]
    lo, hi = _contour_bbox(ax)
    np.testing.assert_allclose(lo, [5.5, 3.5])
    np.testing.assert_allclose(hi, [13.5, 11.5])
    assert ax.get_title() == "a.jpg"


def test_image_grid_stretches_low_resolution_masks_and_heatmaps_over_the_image():
    image = np.zeros((16, 16, 3), np.uint8)
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:6] = True  # cell centres at 2j + 0.5 in image pixels
    heat = np.linspace(0, 1, 16).reshape(4, 4)
    fig = image_grid([Tile(image, mask, heatmap=heat)])
    ax = fig.axes[0]
    lo, hi = _contour_bbox(ax)
    np.testing.assert_allclose(lo, [3.5, 3.5])
    np.testing.assert_allclose(hi, [11.5, 7.5])
    img, overlay = ax.get_images()
    assert overlay.get_extent() == img.get_extent() == [-0.5, 15.5, 15.5, -0.5]


def test_image_grid_closes_outlines_of_masks_touching_the_border():
    mask = np.zeros((10, 10), bool)
    mask[:, :3] = True
    fig = image_grid([Tile(np.zeros((10, 10, 3), np.uint8), mask)])
    lo, hi = _contour_bbox(fig.axes[0])
    np.testing.assert_allclose(lo, [-0.5, -0.5])
    np.testing.assert_allclose(hi, [2.5, 9.5])


def test_retrieval_and_group_galleries_lay_out_rows():
    tile = Tile(np.zeros((8, 8, 3), np.uint8), title="t")
    fig = retrieval_gallery([(tile, [tile] * 3), (tile, [tile] * 2)])
    assert len(fig.axes) == 2 * 5
    assert sum(ax.axison for ax in fig.axes) == 4 + 3
    fig = group_gallery({"car": [tile] * 5, "bus": [tile]}, max_per_group=4)
    assert len(fig.axes) == 8 and sum(ax.axison for ax in fig.axes) == 5
    assert [fig.axes[0].get_ylabel(), fig.axes[4].get_ylabel()] == ["car", "bus"]
    fig = cluster_gallery([tile] * 3, ["truck", "car", "car"], cluster_name="cluster 7")
    assert fig.get_suptitle() == "cluster 7: car 2, truck 1"


def test_save_figure_writes_png_and_parseable_svg(tmp_path, planted):
    xy, labels = planted
    paths = save_figure(embedding_map(xy, labels), tmp_path / "maps" / "layer_blocks.5")
    assert [p.name for p in paths] == ["layer_blocks.5.png", "layer_blocks.5.svg"]
    png, svg = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert "person" in svg.read_text()  # text stays text (svg.fonttype none)


def test_the_tree_cut_at_the_purity_clusters_has_one_leaf_per_cluster():
    from scipy.cluster.hierarchy import fcluster, linkage

    from loce.figures.dendrogram import cluster_dendrogram_figure, cluster_tree

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c * 10, 0.5, size=(30, 4)) for c in range(4)])
    labels = [f"c{i // 30}" for i in range(120)]
    Z = linkage(X, "ward")
    clusters = fcluster(Z, 4, criterion="maxclust")
    reduced, leaf_clusters = cluster_tree(Z, clusters)
    assert reduced.shape == (3, 4) and sorted(leaf_clusters) == sorted(set(clusters.tolist()))
    assert reduced[-1, 3] == 4 and np.all(np.diff(reduced[:, 2]) >= 0)
    np.testing.assert_allclose(sorted(reduced[:, 2]), sorted(Z[-3:, 2]))  # the merges above the cut, kept
    mixed = clusters.copy()
    mixed[0], mixed[40] = mixed[40], mixed[0]  # not subtrees any more
    assert cluster_tree(Z, mixed) is None
    fig = cluster_dendrogram_figure(Z, labels, clusters, purity=1.0, title="t")
    bars = [p for p in fig.axes[1].patches]
    assert len(bars) == 4 and all(
        abs(b.get_height() - 1.0) < 1e-9 for b in bars
    )  # pure clusters: one bar each
    assert "4 clusters of 120 LoCEs" in fig.axes[0].get_title()
