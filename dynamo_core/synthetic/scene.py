"""Procedural street scenes: the road layout, the scenery boxes, the vehicles and the ego path.

World axes follow the vehicle convention: x along the road (forward), y to the left, z up;
the road surface is the plane z = 0. Time is counted in frames; velocities are metres per frame.
Everything is drawn from one `numpy.random.Generator`, so a scene is a pure function of its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Kinds of box.
BUILDING = 0
PARKED = 1
POLE = 2
VEHICLE = 3

# Road cross-section (metres, world y). Traffic drives on the right: the ego lanes are y <= 0.
LANE_WIDTH = 3.5
SAME_DIRECTION_LANES = (-3.5, 0.0)
ONCOMING_LANES = (3.5, 7.0)
ROAD_RIGHT = -5.25
ROAD_LEFT = 8.75
KERB_WIDTH = 0.3

VEHICLE_SIZE = (4.2, 1.8, 1.5)  # length (x), width (y), height (z)
_GAP_TO_EGO = 6.0  # closest a vehicle in the ego lane may come to the camera, metres
_GAP_BETWEEN_VEHICLES = 3.0


@dataclass(frozen=True)
class Boxes:
    """Axis-aligned boxes in world coordinates at frame 0, moving with constant velocity.

    lower, upper: (N, 3) corners; velocity: (N, 3) metres per frame; kind: (N,) one of
    BUILDING, PARKED, POLE, VEHICLE; colour: (N, 3) base colour in [0, 1]; texture_seed: (N,).
    """

    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    kind: np.ndarray
    colour: np.ndarray
    texture_seed: np.ndarray
    window_period: np.ndarray
    """(N,) horizontal spacing of facade windows, metres (buildings only)."""

    def __len__(self) -> int:
        return len(self.kind)

    def at(self, frame: float) -> tuple[np.ndarray, np.ndarray]:
        """Corners (N, 3), (N, 3) at a frame."""
        shift = self.velocity * frame
        return self.lower + shift, self.upper + shift


@dataclass(frozen=True)
class EgoPath:
    """The camera's path: constant speed, a gentle sinusoidal heading, fixed height.

    `positions` (F + 1, 3) and `headings` (F + 1,) hold one entry per frame plus one more,
    so the motion after the last frame is defined too.
    """

    speed: float
    height: float
    positions: np.ndarray
    headings: np.ndarray

    def camera_to_world(self, frame: int) -> np.ndarray:
        """(4, 4) pose of the camera body in vehicle axes (x forward, y left, z up)."""
        cos, sin = math.cos(self.headings[frame]), math.sin(self.headings[frame])
        pose = np.eye(4)
        pose[:3, :3] = [[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]]
        pose[:3, 3] = self.positions[frame]
        return pose


@dataclass(frozen=True)
class Scene:
    boxes: Boxes
    ego: EgoPath
    frames: int
    sun: np.ndarray
    """(3,) unit vector towards the sun, world axes."""
    ground_seed: int
    sidewalk_width: tuple[float, float]
    """Width of the right and left pavements, metres."""

    @property
    def vehicle_count(self) -> int:
        return int(np.sum(self.boxes.kind == VEHICLE))


def build_scene(rng: np.random.Generator, frames: int) -> Scene:
    """Draw a whole sequence: ego path, vehicles, parked boxes, poles and buildings."""
    ego = _ego_path(rng, frames)
    far_x = float(ego.positions[-1, 0]) + rng.uniform(110.0, 150.0)
    sidewalks = (rng.uniform(4.0, 6.0), rng.uniform(4.0, 6.0))
    parts = [
        _vehicles(rng, ego, frames),
        _parked_and_poles(rng, sidewalks, far_x),
        _buildings(rng, sidewalks, far_x),
    ]
    boxes = Boxes(*(np.concatenate([getattr(p, name) for p in parts]) for name in Boxes.__dataclass_fields__))
    azimuth = rng.uniform(0.0, 2 * math.pi)
    elevation = rng.uniform(0.6, 1.0)
    sun = np.array(
        [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)]
    )
    return Scene(
        boxes=boxes,
        ego=ego,
        frames=frames,
        sun=sun,
        ground_seed=int(rng.integers(1, 2**31)),
        sidewalk_width=sidewalks,
    )


def _ego_path(rng: np.random.Generator, frames: int) -> EgoPath:
    # One speed for every sequence, within 5%: when it varies threefold, the pose network must learn each
    # sequence's speed before depth becomes consistent across them, and from scratch that took 1000-1125
    # disp_init steps at the demo's settings against 425-500 here.
    speed = rng.uniform(0.95, 1.05)
    height = rng.uniform(1.5, 1.7)
    period = rng.uniform(40.0, 100.0)
    omega = 2 * math.pi / period
    # Keep the weave inside the lane: the lateral swing is about speed * amplitude / omega.
    amplitude = min(rng.uniform(0.01, 0.05), 0.6 * omega / speed)
    phase = rng.uniform(0.0, 2 * math.pi)
    steps = np.arange(frames + 1)
    headings = amplitude * np.sin(omega * steps + phase)
    positions = np.zeros((frames + 1, 3))
    positions[0] = [0.0, -speed * amplitude / omega * math.cos(phase), height]
    for k in range(frames):
        mid = 0.5 * (headings[k] + headings[k + 1])
        positions[k + 1] = positions[k] + speed * np.array([math.cos(mid), math.sin(mid), 0.0])
    return EgoPath(speed=speed, height=height, positions=positions, headings=headings)


@dataclass
class _Vehicle:
    lane: float
    x0: float  # centre at frame 0
    speed: float  # along +x, metres per frame
    size: tuple[float, float, float]

    def centre(self, frame: float) -> float:
        return self.x0 + self.speed * frame


def _draw_vehicle(rng: np.random.Generator, role: str, ego: EgoPath, frames: int) -> _Vehicle:
    size = (
        VEHICLE_SIZE[0] + rng.uniform(-0.4, 0.5),
        VEHICLE_SIZE[1] + rng.uniform(-0.1, 0.1),
        VEHICLE_SIZE[2] + rng.uniform(-0.1, 0.2),
    )
    s = ego.speed
    if role == "with_ego":  # nearly the camera's own speed: looks static to a static-world learner
        lane = float(rng.choice(SAME_DIRECTION_LANES))
        speed = s * (1 + rng.uniform(-0.03, 0.03))
        x0 = rng.uniform(10.0, 22.0) + size[0] / 2
    elif role == "oncoming":
        lane = float(rng.choice(ONCOMING_LANES))
        speed = -rng.uniform(0.5, 1.5)
        meet = rng.uniform(0.3, 1.1) * frames
        x0 = (s - speed) * meet
    elif role == "slower":
        lane = SAME_DIRECTION_LANES[0]
        speed = s * rng.uniform(0.3, 0.7)
        x0 = rng.uniform(15.0, 40.0)
    else:  # faster, pulling away
        lane = float(rng.choice(SAME_DIRECTION_LANES))
        speed = s + rng.uniform(0.3, 0.8)
        x0 = rng.uniform(8.0, 20.0) + size[0] / 2
    return _Vehicle(lane=lane, x0=x0, speed=speed, size=size)


def _fits(candidate: _Vehicle, placed: list[_Vehicle], ego: EgoPath, frames: int) -> bool:
    """No overlap with other vehicles in its lane, and never closer than a safe gap to the camera.

    Distances between constant-velocity movers are linear in time, so checking the
    first and last frame is enough.
    """
    ends = (0, frames)
    for other in placed:
        if other.lane != candidate.lane:
            continue
        margin = (candidate.size[0] + other.size[0]) / 2 + _GAP_BETWEEN_VEHICLES
        gaps = [candidate.centre(t) - other.centre(t) for t in ends]
        if gaps[0] * gaps[1] <= 0 or min(abs(g) for g in gaps) < margin:
            return False
    if abs(candidate.lane) < LANE_WIDTH / 2:  # shares the ego lane: must stay ahead
        for t in ends:
            rear = candidate.centre(t) - candidate.size[0] / 2
            if rear - ego.positions[t, 0] < _GAP_TO_EGO:
                return False
    return True


def _vehicles(rng: np.random.Generator, ego: EgoPath, frames: int) -> Boxes:
    count = int(rng.integers(2, 7))
    roles = ["with_ego", "oncoming"] + list(rng.choice(["with_ego", "oncoming", "slower", "faster"], size=count - 2))
    placed: list[_Vehicle] = []
    for role in roles:
        for _ in range(20):
            candidate = _draw_vehicle(rng, str(role), ego, frames)
            if _fits(candidate, placed, ego, frames):
                placed.append(candidate)
                break
    lower, upper, velocity = [], [], []
    for v in placed:
        length, width, height = v.size
        lower.append([v.x0 - length / 2, v.lane - width / 2, 0.0])
        upper.append([v.x0 + length / 2, v.lane + width / 2, height])
        velocity.append([v.speed, 0.0, 0.0])
    n = len(placed)
    hues = rng.uniform(0.0, 1.0, size=n)
    return Boxes(
        lower=np.array(lower, dtype=np.float64).reshape(n, 3),
        upper=np.array(upper, dtype=np.float64).reshape(n, 3),
        velocity=np.array(velocity, dtype=np.float64).reshape(n, 3),
        kind=np.full(n, VEHICLE, dtype=np.int8),
        colour=np.array([_hue_to_rgb(h, 0.75, 0.8) for h in hues]).reshape(n, 3),
        texture_seed=rng.integers(1, 2**31, size=n),
        window_period=np.zeros(n),
    )


def _parked_and_poles(rng: np.random.Generator, sidewalks: tuple[float, float], far_x: float) -> Boxes:
    lower, upper, kind, colour = [], [], [], []
    for side, width in zip((-1.0, 1.0), sidewalks):
        kerb = ROAD_RIGHT if side < 0 else ROAD_LEFT
        # Parked boxes sit just behind the kerb, poles further out, clear of them.
        x = rng.uniform(-30.0, -10.0)
        while x < far_x - 10:
            length = rng.uniform(3.8, 5.5)
            width_box = rng.uniform(1.6, 2.0)
            height = rng.uniform(1.3, 2.4)
            inner = kerb + side * (KERB_WIDTH + 0.2)
            ys = sorted([inner, inner + side * width_box])
            lower.append([x, ys[0], 0.0])
            upper.append([x + length, ys[1], height])
            kind.append(PARKED)
            colour.append(_hue_to_rgb(rng.uniform(), rng.uniform(0.1, 0.5), rng.uniform(0.45, 0.85)))
            x += length + rng.uniform(2.0, 18.0)
        x = rng.uniform(-30.0, -10.0)
        while x < far_x - 10:
            offset = kerb + side * min(width - 0.5, 3.0)
            lower.append([x, offset - 0.12, 0.0])
            upper.append([x + 0.24, offset + 0.12, rng.uniform(4.0, 7.0)])
            kind.append(POLE)
            colour.append([0.55, 0.56, 0.58])
            x += rng.uniform(12.0, 28.0)
    n = len(kind)
    return Boxes(
        lower=np.array(lower, dtype=np.float64).reshape(n, 3),
        upper=np.array(upper, dtype=np.float64).reshape(n, 3),
        velocity=np.zeros((n, 3)),
        kind=np.array(kind, dtype=np.int8),
        colour=np.array(colour, dtype=np.float64).reshape(n, 3),
        texture_seed=rng.integers(1, 2**31, size=n),
        window_period=np.zeros(n),
    )


_FACADE_COLOURS = (
    (0.78, 0.70, 0.58),  # sandstone
    (0.62, 0.36, 0.28),  # brick
    (0.70, 0.70, 0.68),  # concrete
    (0.55, 0.60, 0.66),  # blue-grey
    (0.85, 0.80, 0.70),  # cream
    (0.50, 0.45, 0.40),  # dark stone
)


def _buildings(rng: np.random.Generator, sidewalks: tuple[float, float], far_x: float) -> Boxes:
    lower, upper, colour, period = [], [], [], []
    for side, width in zip((-1.0, 1.0), sidewalks):
        kerb = ROAD_RIGHT if side < 0 else ROAD_LEFT
        x = -40.0
        while x < far_x:
            length = rng.uniform(7.0, 25.0)
            facade = kerb + side * (width + rng.uniform(0.0, 4.0))
            back = facade + side * rng.uniform(8.0, 20.0)
            ys = sorted([facade, back])
            lower.append([x, ys[0], 0.0])
            upper.append([x + length, ys[1], rng.uniform(6.0, 24.0)])
            base = np.array(_FACADE_COLOURS[int(rng.integers(len(_FACADE_COLOURS)))])
            colour.append(np.clip(base * rng.uniform(0.85, 1.1, size=3), 0.0, 1.0))
            period.append(rng.uniform(2.4, 4.0))
            x += length
    # A row of buildings across the far end, so that no surface is infinitely far but the sky.
    lower.append([far_x, -400.0, 0.0])
    upper.append([far_x + 20.0, 400.0, rng.uniform(18.0, 35.0)])
    colour.append(np.array(_FACADE_COLOURS[int(rng.integers(len(_FACADE_COLOURS)))]))
    period.append(rng.uniform(2.4, 4.0))
    n = len(lower)
    return Boxes(
        lower=np.array(lower, dtype=np.float64),
        upper=np.array(upper, dtype=np.float64),
        velocity=np.zeros((n, 3)),
        kind=np.full(n, BUILDING, dtype=np.int8),
        colour=np.array(colour, dtype=np.float64),
        texture_seed=rng.integers(1, 2**31, size=n),
        window_period=np.array(period, dtype=np.float64),
    )


def _hue_to_rgb(hue: float, saturation: float, value: float) -> list[float]:
    """HSV to RGB, all in [0, 1]."""
    h = (hue % 1.0) * 6.0
    i = int(h)
    f = h - i
    p, q, t = value * (1 - saturation), value * (1 - saturation * f), value * (1 - saturation * (1 - f))
    return [
        (value, t, p),
        (q, value, p),
        (p, value, t),
        (p, q, value),
        (t, p, value),
        (value, p, q),
    ][i % 6]
