"""Pure geometry: camera projection, poses, depth scaling, image similarity and the ground plane.

Nothing here holds state or is sized by batch at construction.
"""

from .camera import backproject, grid_camera, pixel_grid, project, project_to_grid, transform_points
from .depth import depth_to_disp, disp_to_depth
from .ground import fit_ground_plane, ground_plane_depth, plane_distance
from .image import edge_aware_smoothness, edge_weights, ssim, upsample_bilinear
from .photometric import PhotometricError
from .pose import axis_angle_to_matrix, pose_vec_to_matrix, translation_matrix

__all__ = [
    "axis_angle_to_matrix",
    "backproject",
    "depth_to_disp",
    "disp_to_depth",
    "edge_aware_smoothness",
    "edge_weights",
    "fit_ground_plane",
    "grid_camera",
    "ground_plane_depth",
    "pixel_grid",
    "PhotometricError",
    "plane_distance",
    "pose_vec_to_matrix",
    "project",
    "project_to_grid",
    "ssim",
    "transform_points",
    "translation_matrix",
    "upsample_bilinear",
]
