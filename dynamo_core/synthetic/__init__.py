"""Procedural driving scenes with exact ground truth for depth, ego-motion and independent motion.

`generate_dataset` renders sequences into the processed Waymo-style layout the loaders read.
Scenes are boxes and a ground plane, ray cast with NumPy: facades, parked boxes and poles
along a textured road with lane markings, and 2 to 6 vehicles with their own velocities,
some at nearly the camera's own speed.
"""

from .dataset import FORMAT_VERSION, SyntheticSummary, generate_dataset, sequence_scene
from .raycast import Camera
from .render import (
    MOTION_BACKGROUND,
    MOTION_CODES,
    MOTION_MOVING,
    MOTION_STATIC_OBJECT,
    SEMANTIC_BUILDING,
    SEMANTIC_CODES,
    SEMANTIC_MOVING_OBJECT,
    SEMANTIC_ROAD,
    SEMANTIC_SKY,
    SEMANTIC_STATIC_OBJECT,
    FrameTruth,
    render_frame,
)
from .scene import Scene, build_scene

__all__ = [
    "FORMAT_VERSION",
    "MOTION_BACKGROUND",
    "MOTION_CODES",
    "MOTION_MOVING",
    "MOTION_STATIC_OBJECT",
    "SEMANTIC_BUILDING",
    "SEMANTIC_CODES",
    "SEMANTIC_MOVING_OBJECT",
    "SEMANTIC_ROAD",
    "SEMANTIC_SKY",
    "SEMANTIC_STATIC_OBJECT",
    "Camera",
    "FrameTruth",
    "Scene",
    "SyntheticSummary",
    "build_scene",
    "generate_dataset",
    "render_frame",
    "sequence_scene",
]
