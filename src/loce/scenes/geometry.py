"""Small exact geometry for the scene world: mesh vertices, rotations, and camera maths (numpy only).

Objects are placed without a physics simulation, so the layout needs each object's exact extent: the vertices
of its visual meshes, read from the OBJ / STL files themselves. Rotations are unit quaternions in pybullet's
``(x, y, z, w)`` order; the scene layout only uses yaw and axis-aligned flips, so a rotated axis-aligned box is
still exact along z (objects rest exactly on their support).

Example:
    >>> q = quaternion_from_euler(0.0, 0.0, np.pi / 2)
    >>> np.round(rotate(q, np.array([[1.0, 0.0, 0.0]])), 6).tolist()
    [[0.0, 1.0, 0.0]]
"""

from __future__ import annotations

import struct
from functools import lru_cache
from pathlib import Path

import numpy as np

from loce.errors import InputError


@lru_cache(maxsize=64)
def _read_mesh_cached(path: str) -> np.ndarray:
    file = Path(path)
    if not file.is_file():
        raise InputError(
            f'Mesh file {file} does not exist; reinstall pybullet (`pip install "loce[scenes]"`).'
        )
    data = file.read_bytes()
    suffix = file.suffix.lower()
    if suffix == ".obj":
        vertices = [
            line.split()[1:4]
            for line in data.decode("utf-8", "replace").splitlines()
            if line.startswith("v ")
        ]
        points = np.asarray(vertices, dtype=np.float64)
    elif suffix == ".stl":
        if data[:5] == b"solid" and b"facet" in data[:512]:
            rows = [
                line.split()[1:4] for line in data.decode("ascii", "replace").splitlines() if "vertex" in line
            ]
            points = np.asarray(rows, dtype=np.float64)
        else:
            (count,) = struct.unpack("<I", data[80:84])
            record = np.dtype([("normal", "<f4", 3), ("vertices", "<f4", (3, 3)), ("attr", "<u2")])
            points = np.frombuffer(data[84 : 84 + record.itemsize * count], dtype=record)["vertices"]
            points = points.reshape(-1, 3).astype(np.float64)
    else:
        raise InputError(f"Mesh file {file}: only .obj and .stl meshes are supported by the scene world.")
    if points.ndim != 2 or len(points) == 0:
        raise InputError(f"Mesh file {file} holds no vertices.")
    points.setflags(write=False)
    return points


def read_mesh_vertices(path: str | Path) -> np.ndarray:
    """The vertices (N x 3, float64, read-only) of an OBJ or STL (ASCII or binary) mesh file, cached per path.

    Example:
        >>> read_mesh_vertices(Path(pybullet_data.getDataPath()) / "cube.obj").shape  # doctest: +SKIP
        (8, 3)
    """
    return _read_mesh_cached(str(path))


def quaternion_from_euler(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Quaternion ``(x, y, z, w)`` of the rotation ``Rz(yaw) @ Ry(pitch) @ Rx(roll)`` (pybullet's convention)."""
    cr, sr = np.cos(roll / 2), np.sin(roll / 2)
    cp, sp = np.cos(pitch / 2), np.sin(pitch / 2)
    cy, sy = np.cos(yaw / 2), np.sin(yaw / 2)
    return np.array(
        [
            sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy,
            cr * cp * sy - sr * sp * cy,
            cr * cp * cy + sr * sp * sy,
        ]
    )


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The quaternion of "rotate by ``b``, then by ``a``" (Hamilton product ``a * b``, ``(x, y, z, w)`` order)."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def rotation_matrix(q: np.ndarray) -> np.ndarray:
    """The 3 x 3 rotation matrix of a unit quaternion ``(x, y, z, w)``."""
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotate(q: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``points`` (N x 3) rotated by the quaternion ``q``."""
    return np.asarray(points, dtype=np.float64) @ rotation_matrix(q).T


def box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The 8 corners (8 x 3) of the axis-aligned box ``[lo, hi]``."""
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def camera_eye(target: np.ndarray, distance: float, azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """The camera position at ``distance`` from ``target``, seen from ``azimuth`` (about +z, from +x) and
    ``elevation`` (above the horizontal plane), both in degrees."""
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    offset = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    return np.asarray(target, dtype=np.float64) + distance * offset


def camera_basis(eye: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(forward, right, up)`` unit vectors of a camera at ``eye`` looking at ``target`` with +z up."""
    forward = np.asarray(target, dtype=np.float64) - np.asarray(eye, dtype=np.float64)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return forward, right, up


def ray_to_ground(
    eye: np.ndarray, target: np.ndarray, fov_deg: float, ndc_x: float, ndc_y: float, height: float = 0.0
) -> np.ndarray | None:
    """Where the ray through the normalised image point ``(ndc_x, ndc_y)`` (both in [-1, 1], +y up) of a square
    image meets the plane ``z = height``; ``None`` when the ray does not go down to it."""
    forward, right, up = camera_basis(eye, target)
    half = np.tan(np.radians(fov_deg) / 2)
    direction = forward + ndc_x * half * right + ndc_y * half * up
    if direction[2] >= -1e-9:
        return None
    t = (height - eye[2]) / direction[2]
    return None if t <= 0 else np.asarray(eye, dtype=np.float64) + t * direction


def project(eye: np.ndarray, target: np.ndarray, fov_deg: float, points: np.ndarray) -> np.ndarray:
    """Normalised image coordinates (N x 2, in [-1, 1] inside the square image, +y up) of world ``points``;
    points behind the camera get ``nan``."""
    forward, right, up = camera_basis(eye, target)
    rel = np.atleast_2d(points) - eye
    depth = rel @ forward
    half = np.tan(np.radians(fov_deg) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = np.stack([(rel @ right) / (depth * half), (rel @ up) / (depth * half)], axis=1)
    xy[depth <= 0] = np.nan
    return xy
