"""Render one frame of a scene: a supersampled colour image and exact ground truth.

Ground truth is taken from one ray through each pixel centre. Colour is anti-aliased twice:
textures are box-filtered analytically over each ray's footprint, and pixels where the
surface changes are supersampled with `supersample` x `supersample` rays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import scene as sc
from .raycast import CAMERA_TO_BODY, GROUND, SKY, Camera, Hits, RayGrid, cast, cast_rays, world_directions
from .texture import band_coverage, lattice_offsets, pulse_coverage, value_noise

# Semantic codes, chosen to match the Waymo category numbers of the same classes.
SEMANTIC_MOVING_OBJECT = 2  # Waymo "car": the vehicles that drive
SEMANTIC_BUILDING = 19
SEMANTIC_ROAD = 20  # the whole ground plane: road, markings, kerbs and pavements
SEMANTIC_SKY = 25
SEMANTIC_STATIC_OBJECT = 28  # Waymo "static": parked boxes and poles
SEMANTIC_CODES = {
    "moving_object": SEMANTIC_MOVING_OBJECT,
    "building": SEMANTIC_BUILDING,
    "road": SEMANTIC_ROAD,
    "sky": SEMANTIC_SKY,
    "static_object": SEMANTIC_STATIC_OBJECT,
}

# Motion codes, as the Waymo motion masks use them.
MOTION_BACKGROUND = 0
MOTION_MOVING = 1
MOTION_STATIC_OBJECT = 2
MOTION_CODES = {"background": MOTION_BACKGROUND, "moving": MOTION_MOVING, "static_object": MOTION_STATIC_OBJECT}

LIDAR_BEAMS = 64
LIDAR_MAX_DEPTH = 80.0
LIDAR_MAX_AZIMUTHS = 360  # 64 x 360 points stay below the 25000 rows a loader item carries
_LIDAR_TOP_ELEVATION = math.radians(2.0)

_KIND_SEMANTIC = np.array([SEMANTIC_BUILDING, SEMANTIC_STATIC_OBJECT, SEMANTIC_STATIC_OBJECT, SEMANTIC_MOVING_OBJECT])
_KIND_MOTION = np.array([MOTION_BACKGROUND, MOTION_STATIC_OBJECT, MOTION_STATIC_OBJECT, MOTION_MOVING])

_ASPHALT = np.array([0.34, 0.34, 0.36], dtype=np.float32)
_PAINT = np.array([0.92, 0.92, 0.88], dtype=np.float32)
_KERB = np.array([0.72, 0.71, 0.69], dtype=np.float32)
_PAVING = np.array([0.62, 0.59, 0.55], dtype=np.float32)
_GLASS = np.array([0.16, 0.20, 0.26], dtype=np.float32)
_TYRE = np.array([0.07, 0.07, 0.08], dtype=np.float32)
_SKY_HORIZON = np.array([0.86, 0.89, 0.93], dtype=np.float32)
_SKY_ZENITH = np.array([0.42, 0.60, 0.88], dtype=np.float32)

_GROUND_CELLS = (3.0, 0.9, 0.3, 0.1)
_WALL_CELLS = (2.0, 0.6, 0.2, 0.07)
_BODY_CELLS = (1.0, 0.3, 0.1)


@dataclass
class FrameTruth:
    """Ground truth of one frame at the render size (H, W).

    depth: (H, W) float64 depth along the optical axis in metres, 0 on the sky.
    semantic, motion: (H, W) uint8 codes (SEMANTIC_CODES, MOTION_CODES).
    scene_flow: (H, W, 3) float32 displacement of the seen surface point from this frame to
        the next, in this frame's camera axes (x right, y down, z forward); 0 on static surfaces.
    lidar: (N, 3) float32 rows [column, row, depth] of the sparse scan, in pixels of the render size.
    """

    depth: np.ndarray
    semantic: np.ndarray
    motion: np.ndarray
    scene_flow: np.ndarray
    lidar: np.ndarray


def lidar_grid(camera: Camera) -> RayGrid:
    """Scan pattern: 64 beams at even elevation steps from 2 degrees up to the bottom of the image,
    each sampled at even azimuth steps, one per two image columns (at most 360)."""
    bottom = math.atan((camera.height - 1 - camera.cy) / camera.focal)
    top = min(_LIDAR_TOP_ELEVATION, math.atan(camera.cy / camera.focal))
    elevations = np.linspace(top, -bottom, LIDAR_BEAMS)
    half_fov = math.atan(min(camera.cx, camera.width - 1 - camera.cx) / camera.focal)
    azimuths = np.linspace(-half_fov, half_fov, min(max(camera.width // 2, 2), LIDAR_MAX_AZIMUTHS))
    rows = camera.cy - camera.focal * np.tan(elevations)  # increasing, as elevations decrease
    cols = camera.cx + camera.focal * np.tan(azimuths)
    return RayGrid(u=cols, v=rows)


def render_frame(scene: sc.Scene, camera: Camera, frame: int, supersample: int = 2) -> tuple[np.ndarray, FrameTruth]:
    """Colour image (H, W, 3) float32 in [0, 1] and the ground truth of one frame.

    Anti-aliasing is adaptive supersampling: a pixel whose centre ray sees the same face as
    those of its 8 neighbours is shaded once, with a pixel-wide texture filter; any other
    pixel is the mean of its `supersample` x `supersample` sub-rays, each shaded with a
    filter of the sub-ray's width.
    """
    pose = scene.ego.camera_to_world(frame)
    lower, upper = scene.boxes.at(frame)
    centre_grid = RayGrid.pixel_centres(camera)
    centre = cast(camera, centre_grid, pose, lower, upper)
    truth = _truth(scene, camera, pose, lower, upper, centre)
    image = _image(scene, camera, pose, lower, upper, centre, supersample)
    return image, truth


def _truth(scene, camera, pose, lower, upper, centre: Hits) -> FrameTruth:
    # Lookup tables indexed by target + 2 (GROUND = -2, SKY = -1, then the boxes).
    kinds = scene.boxes.kind
    semantic_of = np.concatenate([[SEMANTIC_ROAD, SEMANTIC_SKY], _KIND_SEMANTIC[kinds]]).astype(np.uint8)
    motion_of = np.concatenate([[MOTION_BACKGROUND, MOTION_BACKGROUND], _KIND_MOTION[kinds]]).astype(np.uint8)
    # Boxes only translate, so every point of a box moves by its velocity; rotate it into camera axes.
    world_to_camera = (pose[:3, :3] @ CAMERA_TO_BODY).T
    flow_of = np.concatenate([np.zeros((2, 3)), scene.boxes.velocity @ world_to_camera.T]).astype(np.float32)
    lookup = centre.target + 2

    grid = lidar_grid(camera)
    scan = cast(camera, grid, pose, lower, upper)
    keep = (scan.target != SKY) & (scan.depth < LIDAR_MAX_DEPTH)
    rows, cols = np.nonzero(keep)
    lidar = np.stack([grid.u[cols], grid.v[rows], scan.depth[rows, cols]], axis=1).astype(np.float32)

    return FrameTruth(
        depth=np.where(centre.target == SKY, 0.0, centre.depth),
        semantic=semantic_of[lookup],
        motion=motion_of[lookup],
        scene_flow=flow_of[lookup],
        lidar=lidar,
    )


def _edge_pixels(centre: Hits) -> np.ndarray:
    """(H, W) bool: pixels next to a pixel whose centre sees another face (8-neighbourhood)."""
    face = centre.target * 4 + centre.axis
    edge = np.zeros(face.shape, dtype=bool)
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = face[: face.shape[0] - dr, max(dc, 0) : face.shape[1] + min(dc, 0)]
        b = face[dr:, max(-dc, 0) : face.shape[1] + min(-dc, 0)]
        differ = a != b
        edge[: face.shape[0] - dr, max(dc, 0) : face.shape[1] + min(dc, 0)] |= differ
        edge[dr:, max(-dc, 0) : face.shape[1] + min(-dc, 0)] |= differ
    return edge


@dataclass
class _Samples:
    """Rays to shade, one entry each, as contiguous (N,) arrays.

    dx, dy, dz: world direction with unit camera-z component; depth: along the optical axis;
    target, axis: what the ray hit; angle: the width in radians that the ray stands for.
    """

    dx: np.ndarray
    dy: np.ndarray
    dz: np.ndarray
    depth: np.ndarray
    target: np.ndarray
    axis: np.ndarray
    angle: np.ndarray

    def take(self, index: np.ndarray) -> "_Samples":
        return _Samples(*(np.take(getattr(self, name), index) for name in self.__dataclass_fields__))

    @staticmethod
    def join(parts: list["_Samples"]) -> "_Samples":
        return _Samples(*(np.concatenate([getattr(p, name) for p in parts]) for name in _Samples.__dataclass_fields__))


def _image(scene, camera, pose, lower, upper, centre: Hits, supersample: int) -> np.ndarray:
    height, width, s = camera.height, camera.width, supersample
    cdx, cdy, cdz = world_directions(camera, RayGrid.pixel_centres(camera), pose, np.float32)
    edge = _edge_pixels(centre) if s > 1 else np.zeros((height, width), dtype=bool)

    flat = np.flatnonzero(~edge.reshape(-1))
    flat_rows, flat_cols = np.divmod(flat, width)
    parts = [
        _Samples(
            dx=cdx[0, flat_cols],
            dy=cdy[0, flat_cols],
            dz=cdz[flat_rows, 0],
            depth=centre.depth.reshape(-1)[flat].astype(np.float32),
            target=centre.target.reshape(-1)[flat],
            axis=centre.axis.reshape(-1)[flat],
            angle=np.full(len(flat), 1.0 / camera.focal, dtype=np.float32),
        )
    ]
    sub_pixel = None
    if edge.any():
        # Sub-rays of the edge pixels, in raster order of the supersampled grid.
        sub_rows, sub_cols = np.nonzero(np.repeat(np.repeat(edge, s, axis=0), s, axis=1))
        sub_grid = RayGrid.pixel_centres(camera, s)
        sub = cast_rays(camera, sub_grid.u[sub_cols], sub_grid.v[sub_rows], pose, lower, upper, dtype=np.float32)
        sdx, sdy, sdz = world_directions(camera, sub_grid, pose, np.float32)
        parts.append(
            _Samples(
                dx=sdx[0, sub_cols],
                dy=sdy[0, sub_cols],
                dz=sdz[sub_rows, 0],
                depth=sub.depth,
                target=sub.target,
                axis=sub.axis,
                angle=np.full(len(sub_rows), 1.0 / (camera.focal * s), dtype=np.float32),
            )
        )
        sub_pixel = (sub_rows // s) * width + sub_cols // s

    colour = _shade(scene, pose[:3, 3].astype(np.float32), lower, upper, _Samples.join(parts))
    image = np.empty((height * width, 3), dtype=np.float32)
    image[flat] = colour[: len(flat)]
    if sub_pixel is not None:
        edge_index = np.flatnonzero(edge.reshape(-1))
        sub_colour = colour[len(flat) :]
        for channel in range(3):
            sums = np.bincount(sub_pixel, weights=sub_colour[:, channel], minlength=height * width)
            image[edge_index, channel] = sums[edge_index] / (s * s)
    return image.reshape(height, width, 3)


def _shade(scene, origin, lower, upper, samples: _Samples) -> np.ndarray:
    """(N, 3) colours of the samples."""
    colour = np.empty((len(samples.depth), 3), dtype=np.float32)
    target = samples.target
    for index, shader in (
        (np.flatnonzero(target == SKY), _sky),
        (np.flatnonzero(target == GROUND), _ground),
        (np.flatnonzero(target >= 0), _boxes),
    ):
        if len(index):
            colour[index] = shader(scene, origin, lower, upper, samples.take(index))
    return colour


def _sky(scene, origin, lower, upper, s: _Samples) -> np.ndarray:
    """Sky colour from the world elevation of the ray only: the sky is at infinity."""
    sin_elevation = s.dz / np.sqrt(s.dx * s.dx + s.dy * s.dy + s.dz * s.dz)
    blend = np.clip(sin_elevation * 3.0, 0.0, 1.0) ** 0.7
    return _SKY_HORIZON + blend[:, None] * (_SKY_ZENITH - _SKY_HORIZON)


def _ground(scene, origin, lower, upper, s: _Samples) -> np.ndarray:
    length = np.sqrt(s.dx * s.dx + s.dy * s.dy + s.dz * s.dz)
    x = origin[0] + s.depth * s.dx
    y = origin[1] + s.depth * s.dy
    across = s.depth * length * s.angle  # metres per sample across the line of sight
    along = across / np.maximum(-s.dz / length, 0.02)  # stretched by the grazing angle
    footprint = np.sqrt(across * along)

    offsets = lattice_offsets(np.int64(scene.ground_seed))
    noise = value_noise(x, y, offsets, _GROUND_CELLS, footprint)
    asphalt = _ASPHALT * (0.5 + noise)[:, None]

    paint = band_coverage(y, 1.60, 1.72, across) + band_coverage(y, 1.78, 1.90, across)
    dashes = pulse_coverage(x, 9.0, 0.0, 3.0, along)
    for centre in (-sc.LANE_WIDTH / 2, sc.LANE_WIDTH * 1.5):
        paint += band_coverage(y, centre - 0.075, centre + 0.075, across) * dashes
    paint += band_coverage(y, sc.ROAD_RIGHT + 0.2, sc.ROAD_RIGHT + 0.35, across)
    paint += band_coverage(y, sc.ROAD_LEFT - 0.35, sc.ROAD_LEFT - 0.2, across)
    paint = np.minimum(paint, 1.0)[:, None]
    road = asphalt + paint * (_PAINT * (0.9 + 0.2 * noise)[:, None] - asphalt)

    joints = 1.0 - (1.0 - pulse_coverage(x, 1.2, 0.0, 0.05, along)) * (1.0 - pulse_coverage(y, 1.2, 0.0, 0.05, across))
    paving = _PAVING * ((0.65 + 0.7 * noise) * (1.0 - 0.35 * joints))[:, None]
    kerb = _KERB * (0.85 + 0.3 * noise)[:, None]

    on_road = band_coverage(y, sc.ROAD_RIGHT, sc.ROAD_LEFT, across)
    on_kerb = band_coverage(y, sc.ROAD_RIGHT - sc.KERB_WIDTH, sc.ROAD_RIGHT, across) + band_coverage(
        y, sc.ROAD_LEFT, sc.ROAD_LEFT + sc.KERB_WIDTH, across
    )
    on_paving = np.clip(1.0 - on_road - on_kerb, 0.0, 1.0)
    colour = on_road[:, None] * road + on_kerb[:, None] * kerb + on_paving[:, None] * paving
    light = 0.55 + 0.45 * max(float(scene.sun[2]), 0.0)
    return colour * np.float32(light)


def _boxes(scene, origin, lower, upper, s: _Samples) -> np.ndarray:
    boxes = scene.boxes
    box, axis = s.target, s.axis
    length = np.sqrt(s.dx * s.dx + s.dy * s.dy + s.dz * s.dz)
    corner = lower.astype(np.float32)
    size = (upper - lower).astype(np.float32)
    # Surface-fixed coordinates: relative to the box's corner, which moves with the box.
    local = [origin[k] + s.depth * d - np.take(corner[:, k], box) for k, d in enumerate((s.dx, s.dy, s.dz))]
    on_x, on_z = axis == 0, axis == 2
    # In-face coordinates: the horizontal one first, height second (roofs: x, y).
    p = np.where(on_x, local[1], local[0])
    q = np.where(on_z, local[1], local[2])
    face_length = np.where(on_x, np.take(size[:, 1], box), np.take(size[:, 0], box))
    face_height = np.where(on_z, np.take(size[:, 1], box), np.take(size[:, 2], box))
    d_normal = np.where(on_x, s.dx, np.where(on_z, s.dz, s.dy))
    facing = np.abs(d_normal) / length
    footprint = s.depth * length * s.angle / np.maximum(facing, 0.05)
    # The face's outward normal points against the ray.
    sun_on_face = np.maximum(-np.sign(d_normal) * np.take(scene.sun.astype(np.float32), axis), 0.0)
    light = 0.5 + 0.5 * sun_on_face

    face = box * 3 + axis
    face_offsets = lattice_offsets(boxes.texture_seed[:, None] + 7919 * np.arange(3)[None, :]).reshape(-1, 2)
    offsets = np.stack([np.take(face_offsets[:, 0], face), np.take(face_offsets[:, 1], face)], axis=1)
    kind = np.take(boxes.kind, box)
    base = np.take(boxes.colour.astype(np.float32), box, axis=0)
    colour = np.empty_like(base)
    vertical = ~on_z

    b = np.flatnonzero(kind == sc.BUILDING)
    if len(b):
        pb, qb, fb = p[b], q[b], footprint[b]
        noise = value_noise(pb, qb, offsets[b], _WALL_CELLS, fb)
        wall = base[b] * (0.65 + 0.7 * noise)[:, None]
        period = np.take(boxes.window_period.astype(np.float32), box[b])
        windows = (
            pulse_coverage(pb, period, 0.3 * period, 0.45 * period, fb)
            * pulse_coverage(qb, 3.2, 1.0, 1.5, fb)
            * band_coverage(qb, 0.5, face_height[b] - 0.8, fb)
            * vertical[b]
        )[:, None]
        glass = _GLASS * (0.6 + 0.8 * noise)[:, None]
        colour[b] = wall + windows * (glass - wall)

    c = np.flatnonzero((kind == sc.VEHICLE) | (kind == sc.PARKED))
    if len(c):
        pc, qc, fc = p[c], q[c], footprint[c]
        noise = value_noise(pc, qc, offsets[c], _BODY_CELLS, fc)
        body = base[c] * (0.75 + 0.5 * noise)[:, None]
        glass_band = (
            band_coverage(qc, 0.85, face_height[c] - 0.15, fc)
            * band_coverage(pc, 0.3, face_length[c] - 0.3, fc)
            * vertical[c]
        )[:, None]
        tyres = (band_coverage(qc, -1.0, 0.3, fc) * vertical[c])[:, None]
        body = body + glass_band * (_GLASS * (0.7 + 0.6 * noise)[:, None] - body)
        colour[c] = body + tyres * (_TYRE - body)

    pole = np.flatnonzero(kind == sc.POLE)
    if len(pole):
        noise = value_noise(p[pole], q[pole], offsets[pole], _BODY_CELLS, footprint[pole])
        colour[pole] = base[pole] * (0.8 + 0.4 * noise)[:, None]

    return colour * light[:, None]
