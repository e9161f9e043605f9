"""Pixels of a scene: pybullet's CPU renderer (TinyRenderer) with its per-pixel object-id buffer.

A :class:`SceneRenderer` owns one pybullet connection (``p.DIRECT``, no GUI, no GPU). For each scene it creates
the floor, the wall and the objects, renders the image and the segmentation buffer (pixel value = the body id
of the object seen there, -1 where nothing is), then renders every object *alone* with the same camera (all
other bodies made fully transparent, which removes them from the colour, depth and id buffers) to measure its
unoccluded silhouette. Bodies are removed afterwards; textures stay loaded for the next scene.

Example:
    >>> from loce.scenes.layout import sample_scene
    >>> rendered = render_scene(sample_scene(seed=0, index=0, size=64))  # doctest: +SKIP
    >>> rendered.image.shape, rendered.segmentation.shape  # doctest: +SKIP
    ((64, 64, 3), (64, 64))
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loce.errors import InputError
from loce.quiet import c_output_silenced
from loce.scenes.catalog import (
    body_extent,
    colour_rgba,
    data_dir,
    get_category,
    texture_path,
    upright_quaternion,
)
from loce.scenes.geometry import (
    box_corners,
    camera_eye,
    project,
    quaternion_from_euler,
    read_mesh_vertices,
    rotate,
)
from loce.scenes.layout import Camera, Lighting, PlacedObject, SceneSpec

NEAR_PLANE = 0.05
FAR_PLANE = 40.0
_HIDDEN = (1.0, 1.0, 1.0, 0.0)
_SHOWN = (1.0, 1.0, 1.0, 1.0)


def _pybullet():
    try:
        with c_output_silenced():  # its C-level build banner would land inside progress bars
            import pybullet
    except ImportError:  # pragma: no cover - pybullet is an extra
        raise ImportError('The scene world needs pybullet: pip install "loce[scenes]"') from None
    return pybullet


@dataclass
class RenderedScene:
    """A rendered scene.

    Attributes:
        image: H x W x 3 uint8 RGB.
        segmentation: H x W int32 object-id buffer (pybullet body ids, -1 = nothing).
        body_ids: the body id of each of ``spec.objects``, in order.
        unoccluded: for each object, its boolean silhouette when rendered alone with the same camera.
        floor_id, wall_id: body ids of the floor and the wall.
    """

    image: np.ndarray
    segmentation: np.ndarray
    body_ids: list[int]
    unoccluded: list[np.ndarray]
    floor_id: int
    wall_id: int

    def visible_mask(self, i: int) -> np.ndarray:
        """Object ``i``'s visible pixels: exactly the segmentation buffer equal to its body id."""
        return self.segmentation == self.body_ids[i]


class SceneRenderer:
    """One pybullet connection that renders scene specs (use one per process).

    Example:
        >>> renderer = SceneRenderer()  # doctest: +SKIP
        >>> rendered = renderer.render(spec)  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._p = _pybullet()
        with c_output_silenced():
            self._client = self._p.connect(self._p.DIRECT)
        self._textures: dict[str, int] = {}

    def close(self) -> None:
        """Disconnect from pybullet."""
        if self._client is not None:
            self._p.disconnect(physicsClientId=self._client)
            self._client = None

    # -- building ---------------------------------------------------------------------------------------
    def _texture(self, name: str) -> int:
        if name not in self._textures:
            self._textures[name] = self._p.loadTexture(str(texture_path(name)), physicsClientId=self._client)
        return self._textures[name]

    def _links(self, body: int) -> list[int]:
        return sorted({row[1] for row in self._p.getVisualShapeData(body, physicsClientId=self._client)})

    def _set_rgba(self, body: int, rgba, links: list[int]) -> None:
        for link in links:
            self._p.changeVisualShape(body, link, rgbaColor=list(rgba), physicsClientId=self._client)

    def _add_object(self, obj: PlacedObject) -> tuple[int, list[int]]:
        p, c = self._p, self._client
        cat = get_category(obj.category)
        path = str(data_dir() / cat.source)
        rgba = colour_rgba(obj.colour)
        if cat.is_urdf:
            body = p.loadURDF(
                path,
                basePosition=obj.position,
                baseOrientation=obj.orientation,
                useFixedBase=True,
                globalScaling=cat.mesh_scale[0] * obj.scale,
                physicsClientId=c,
            )
            links = self._links(body)
            if obj.colour != "original":
                self._set_rgba(body, rgba, links)
        else:
            shape = p.createVisualShape(
                p.GEOM_MESH,
                fileName=path,
                rgbaColor=list(rgba),
                meshScale=[s * obj.scale for s in cat.mesh_scale],
                physicsClientId=c,
            )
            body = p.createMultiBody(
                baseMass=0,
                baseVisualShapeIndex=shape,
                basePosition=obj.position,
                baseOrientation=obj.orientation,
                physicsClientId=c,
            )
            links = [-1]
        if obj.texture != "original":
            for link in links:
                p.changeVisualShape(body, link, textureUniqueId=self._texture(obj.texture), physicsClientId=c)
        return body, links

    def _add_plane(self, texture: str, tile: float, position, orientation) -> int:
        p, c = self._p, self._client
        shape = p.createVisualShape(
            p.GEOM_MESH,
            fileName=str(data_dir() / "plane.obj"),
            meshScale=[tile, tile, 1.0],
            physicsClientId=c,
        )
        body = p.createMultiBody(
            baseMass=0,
            baseVisualShapeIndex=shape,
            basePosition=list(position),
            baseOrientation=list(orientation),
            physicsClientId=c,
        )
        p.changeVisualShape(body, -1, textureUniqueId=self._texture(texture), physicsClientId=c)
        return body

    # -- rendering --------------------------------------------------------------------------------------
    def _camera_image(
        self, size: int, camera: Camera, lighting: Lighting | None
    ) -> tuple[np.ndarray, np.ndarray]:
        p = self._p
        view = p.computeViewMatrix(camera.eye.tolist(), list(camera.target), [0.0, 0.0, 1.0])
        proj = p.computeProjectionMatrixFOV(camera.fov, 1.0, NEAR_PLANE, FAR_PLANE)
        light = {}
        if lighting is not None:
            light = dict(
                lightDirection=list(lighting.direction),
                lightColor=list(lighting.colour),
                lightDistance=lighting.distance,
                shadow=int(lighting.shadow),
                lightAmbientCoeff=lighting.ambient,
                lightDiffuseCoeff=lighting.diffuse,
                lightSpecularCoeff=lighting.specular,
            )
        _, _, rgba, _, seg = p.getCameraImage(
            size, size, view, proj, renderer=p.ER_TINY_RENDERER, physicsClientId=self._client, **light
        )
        image = np.asarray(rgba, dtype=np.uint8).reshape(size, size, 4)[:, :, :3].copy()
        return image, np.asarray(seg, dtype=np.int32).reshape(size, size)

    def render(self, spec: SceneSpec, alone: bool = True) -> RenderedScene:
        """Render ``spec``: the image, the object-id buffer and (if ``alone``) every object's unoccluded
        silhouette, rendered alone with the same camera (otherwise ``unoccluded`` is empty)."""
        p, c = self._p, self._client
        cam = spec.camera
        bodies: list[tuple[int, list[int]]] = []
        floor = wall = -1
        try:
            if spec.floor_texture is not None:
                floor = self._add_plane(
                    spec.floor_texture, spec.floor_tile, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)
                )
            if spec.wall_texture is not None:
                # a vertical plane facing the camera, behind the scene centre; its lower half is under the floor
                forward = np.asarray(cam.target[:2]) - cam.eye[:2]
                forward /= np.linalg.norm(forward)
                wall_xy = forward * spec.wall_distance
                wall_yaw = float(np.arctan2(forward[1], forward[0])) + np.pi / 2
                wall_orn = quaternion_from_euler(-np.pi / 2, 0.0, wall_yaw)
                wall = self._add_plane(
                    spec.wall_texture, spec.wall_tile, (wall_xy[0], wall_xy[1], 0.0), wall_orn
                )
            bodies = [self._add_object(obj) for obj in spec.objects]
            image, seg = self._camera_image(spec.size, cam, spec.lighting)
            floor_id, wall_id = floor, wall
            silhouettes: list[np.ndarray] = []
            if alone and bodies:
                # the floor and wall go (a transparent full-screen plane still costs its rasterisation);
                # the other objects are made fully transparent, which drops them from every buffer
                for plane in (floor, wall):
                    if plane >= 0:
                        p.removeBody(plane, physicsClientId=c)
                floor = wall = -1
                for body, links in bodies:
                    self._set_rgba(body, _HIDDEN, links)
                for body, links in bodies:
                    self._set_rgba(body, _SHOWN, links)
                    silhouettes.append(self._camera_image(spec.size, cam, None)[1] == body)
                    self._set_rgba(body, _HIDDEN, links)
            return RenderedScene(image, seg, [b for b, _ in bodies], silhouettes, floor_id, wall_id)
        finally:
            for body in [floor, wall, *[b for b, _ in bodies]]:
                if body >= 0:
                    p.removeBody(body, physicsClientId=c)


_RENDERERS: dict[int, SceneRenderer] = {}


def default_renderer() -> SceneRenderer:
    """This process's renderer (created on first use; one pybullet connection per process)."""
    pid = os.getpid()
    if pid not in _RENDERERS:
        _RENDERERS[pid] = SceneRenderer()
    return _RENDERERS[pid]


def render_scene(spec: SceneSpec, alone: bool = True) -> RenderedScene:
    """Render a scene spec with this process's renderer (see :class:`SceneRenderer`).

    Example:
        >>> from loce.scenes.layout import sample_scene
        >>> r = render_scene(sample_scene(0, 0, size=96))  # doctest: +SKIP
        >>> bool((r.segmentation == r.body_ids[0]).any())  # doctest: +SKIP
        True
    """
    return default_renderer().render(spec, alone=alone)


def urdf_visual_points(path: str | Path, global_scaling: float = 1.0) -> np.ndarray:
    """Vertices (N x 3) of every visual mesh / box of a URDF in its base link frame, read from the mesh files
    at the poses pybullet loads them with (fixed base, joints at zero).

    Visual frames are relative to each link's URDF frame (not its centre of mass); child links are placed at
    their world link frames with the base at the origin.
    """
    p = _pybullet()
    with c_output_silenced():
        client = p.connect(p.DIRECT)
    try:
        body = p.loadURDF(str(path), useFixedBase=True, globalScaling=global_scaling, physicsClientId=client)
        points = []
        for row in p.getVisualShapeData(body, physicsClientId=client):
            link, geometry, dims, file, local_pos, local_orn = row[1], row[2], row[3], row[4], row[5], row[6]
            if geometry == p.GEOM_MESH:
                shape = read_mesh_vertices(file.decode()) * np.asarray(dims)
            elif geometry == p.GEOM_BOX:
                half = np.asarray(dims) / 2
                shape = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * half
            else:
                raise InputError(
                    f"{path}: visual geometry type {geometry} is not supported by the scene world."
                )
            shape = rotate(np.asarray(local_orn), shape) + np.asarray(local_pos)
            if link >= 0:
                state = p.getLinkState(body, link, physicsClientId=client)
                shape = rotate(np.asarray(state[5]), shape) + np.asarray(state[4])
            points.append(shape)
        return np.concatenate(points)
    finally:
        p.disconnect(physicsClientId=client)


def isolated_spec(
    category: str,
    *,
    azimuth: float = 30.0,
    elevation: float = 20.0,
    size: int = 224,
    colour: str | None = None,
    texture: str | None = None,
    scale: float = 1.0,
    fill: float = 0.8,
) -> SceneSpec:
    """The spec of one upright instance of ``category`` alone on the renderer's plain background, framed so
    that its bounding sphere spans ``fill`` of the image (see :func:`render_isolated`)."""
    cat = get_category(category)
    orientation = upright_quaternion(category)
    lo, hi = body_extent(category, orientation, scale)
    position = -(lo + hi) / 2  # centre the geometry on the origin
    fov = 40.0
    # frame the object: scale the distance until its projected bounding box spans `fill` of the image
    corners = box_corners(lo + position, hi + position)
    distance = float(np.linalg.norm(hi - lo) / 2 / np.tan(np.radians(fov / 2)))
    for _ in range(6):
        eye = camera_eye(np.zeros(3), distance, azimuth, elevation)
        extent = float(np.nanmax(np.abs(project(eye, np.zeros(3), fov, corners))))
        distance *= extent / fill
    obj = PlacedObject(
        category=category,
        position=tuple(float(v) for v in position),
        orientation=tuple(float(v) for v in orientation),
        scale=float(scale),
        colour=colour or cat.colours[0],
        texture=texture or cat.textures[0],
        yaw=0.0,
        pose="upright",
        support="none",
        support_index=None,
        near_far=None,
        outlier_kind=None,
        lo=tuple(float(v) for v in lo + position),
        hi=tuple(float(v) for v in hi + position),
    )
    camera = Camera(
        target=(0.0, 0.0, 0.0),
        azimuth=float(azimuth),
        elevation=float(elevation),
        distance=float(distance),
        fov=fov,
    )
    lighting = Lighting(
        direction=(0.4, 0.3, 0.87),
        colour=(1.0, 1.0, 1.0),
        distance=6.0,
        ambient=0.6,
        diffuse=0.5,
        specular=0.2,
        shadow=False,
    )
    return SceneSpec(
        index=0,
        seed=0,
        size=int(size),
        theme="isolated",
        camera=camera,
        lighting=lighting,
        floor_texture=None,
        floor_tile=1.0,
        wall_texture=None,
        wall_tile=1.0,
        wall_distance=0.0,
        objects=(obj,),
    )


def render_isolated(
    category: str,
    *,
    azimuth: float = 30.0,
    elevation: float = 20.0,
    size: int = 224,
    colour: str | None = None,
    texture: str | None = None,
    scale: float = 1.0,
    fill: float = 0.8,
) -> np.ndarray:
    """Render one upright instance of ``category`` alone, centred and filling the frame, on the renderer's
    plain light background: what an ImageNet classifier should recognise.

    Args:
        category: catalog name.
        azimuth, elevation: viewing direction in degrees (azimuth relative to the object's front).
        size: image width and height.
        colour, texture: variant names (default: the category's first).
        scale: instance size factor (the camera distance follows it, so only shading changes).
        fill: share of the image spanned by the object's bounding sphere.

    Returns:
        ``size x size x 3`` uint8 RGB image.

    Example:
        >>> render_isolated("soccer_ball", size=64).shape  # doctest: +SKIP
        (64, 64, 3)
    """
    spec = isolated_spec(
        category,
        azimuth=azimuth,
        elevation=elevation,
        size=size,
        colour=colour,
        texture=texture,
        scale=scale,
        fill=fill,
    )
    return default_renderer().render(spec, alone=False).image
