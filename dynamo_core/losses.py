"""The Dynamo-Depth objective: named loss terms as a pure function of (batch, outputs, phase, step).

Every scale's disparity is upsampled to the input size; the target frame is reconstructed
from each source frame by warping with depth, ego-motion and (where predicted) the
independent motion field; the photometric error takes the per-pixel minimum over sources.

Terms (unweighted, summed over scales, each divided by 2**scale):

| term          | what                                                          | network trained |
| ------------- | ------------------------------------------------------------- | --------------- |
| p_photo       | SSIM/L1 minimum reprojection, automasked in disp_init          | always          |
| d_smooth      | edge-aware smoothness of mean-normalised disparity             | Depth           |
| d_ground      | disparity below the fitted road plane                          | Depth (mask on) |
| c_smooth      | edge-aware smoothness of the complete flow                     | CmpFlow         |
| c_consistency | complete flow equals ego flow where the mask is off            | CmpFlow (mask on) |
| m_sparsity    | BCE towards 0 where complete and ego samples barely differ     | MotMask         |
| m_smooth      | edge-aware smoothness of the motion mask                       | MotMask         |
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .geometry import (
    PhotometricError,
    backproject,
    depth_to_disp,
    disp_to_depth,
    edge_aware_smoothness,
    edge_weights,
    fit_ground_plane,
    grid_camera,
    ground_plane_depth,
    pixel_grid,
    project_to_grid,
    upsample_bilinear,
)

TERMS = ("p_photo", "d_smooth", "d_ground", "c_smooth", "c_consistency", "m_sparsity", "m_smooth")


@dataclass
class LossConfig:
    """Weights and constants of the objective; defaults are the published ones."""

    weights: dict[str, float] = field(
        default_factory=lambda: {
            "p_photo": 1.0,
            "d_smooth": 1e-3,
            "d_ground": 0.1,
            "c_smooth": 1e-3,
            "c_consistency": 5.0,
            "m_sparsity": 0.04,
            "m_smooth": 0.1,
        }
    )
    """Coefficient of each term."""
    ramped: list[str] = field(default_factory=lambda: ["c_smooth", "c_consistency", "m_sparsity", "m_smooth"])
    """Terms whose weight ramps linearly from 0 to full over the first 1/ramp_red of a phase's first epoch."""
    ramp_red: float = 3.0
    ssim_weight: float = 0.85
    """Share of SSIM in the photometric error; the rest is L1."""
    mask_disp_threshold: float = 0.03
    """Consistency is enforced only where the disparity exceeds this (avoids far, rotation-dominated pixels)."""
    ground_prior: float = 0.4
    """Fraction of rows, from the bottom, that may hold the road."""
    ground_tolerance: float = 0.005
    ground_hypotheses: int = 100
    ground_points_per_hypothesis: int = 5
    ground_refit: bool = False
    """Refit the winning road-plane hypothesis to its inliers; the original returns the hypothesis as is."""


@dataclass(frozen=True)
class Phase:
    """One of the four training phases: which heads run, which networks learn."""

    name: str
    complete_flow: bool
    motion_mask: bool
    networks: tuple[str, ...]
    lr_factor: float = 1.0

    @property
    def automask(self) -> bool:
        return self.name == "disp_init"

    def trains(self, network: str) -> bool:
        return network in self.networks


PHASES = {
    "disp_init": Phase("disp_init", False, False, ("Depth", "Pose")),
    "motion_init": Phase("motion_init", True, False, ("CmpFlow",)),
    "mask_init": Phase("mask_init", True, True, ("Pose", "CmpFlow", "MotMask")),
    "fine_tune": Phase("fine_tune", True, True, ("Depth", "Pose", "CmpFlow", "MotMask"), lr_factor=0.5),
}


@dataclass
class LossResult:
    """Total loss plus its parts, all scalars; `visuals` holds full-resolution maps for logging."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    per_scale: dict[int, torch.Tensor]
    coefficients: dict[str, float]
    visuals: dict = field(default_factory=dict)

    def as_record(self) -> dict[str, float]:
        """Flat floats named as in the reference records: loss, loss_term/*, loss_coef/*."""
        record = {"loss": float(self.total.detach())}
        record.update({f"loss_term/{k}": float(v.detach()) for k, v in self.terms.items()})
        record.update({f"loss_term/{s}": float(v.detach()) for s, v in self.per_scale.items()})
        record.update({f"loss_coef/{k}": float(v) for k, v in self.coefficients.items()})
        return record


def coefficients(config: LossConfig, step: int, steps_per_epoch: int) -> dict[str, float]:
    """Weights after the ramp; `step` counts from the start of the phase."""
    ramp = min(max(config.ramp_red * step / max(steps_per_epoch, 1), 0.0), 1.0)
    return {t: config.weights[t] * (ramp if t in config.ramped else 1.0) for t in TERMS}


def color_pyramid(color: torch.Tensor, scales) -> dict[int, torch.Tensor]:
    """Successive bicubic (antialiased) halvings of (B, 3, H, W), clamped to [0, 1]."""
    pyramid = {0: color}
    height, width = color.shape[-2:]
    for scale in range(1, max(scales) + 1):
        size = (height // 2**scale, width // 2**scale)
        resized = F.interpolate(pyramid[scale - 1], size=size, mode="bicubic", align_corners=False, antialias=True)
        pyramid[scale] = resized.clamp(0, 1)
    return pyramid


def _resize(x: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize of (B, C, h, w) to `size`; a map already of that size is returned as it is."""
    (h, w), (height, width) = x.shape[-2:], size
    if (h, w) == (height, width):
        return x
    if height % h == 0 and height // h == width // w and width % w == 0:
        return upsample_bilinear(x, height // h)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class _FullSize:
    """Resizes maps to the input size, once per map: both source frames share one motion mask."""

    def __init__(self, height: int, width: int):
        self.size = (height, width)
        self.done: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if id(x) not in self.done:
            self.done[id(x)] = (x, _resize(x, self.size))  # holding x keeps its id from being reused
        return self.done[id(x)][1]


def compute(
    batch: dict,
    outputs: dict,
    phase: Phase,
    step: int,
    steps_per_epoch: int,
    *,
    config: LossConfig | None = None,
    frame_ids=(0, -1, 1),
    scales=(0, 1, 2),
    min_depth: float = 0.1,
    max_depth: float = 100.0,
    planes: dict[int, torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
    keep_visuals: bool = False,
) -> LossResult:
    """Evaluate the objective.

    Args:
        batch: ("color", f, s) (B, 3, H/2**s, W/2**s) for f in frame_ids at s = 0 and for the target
            at every scale (see `color_pyramid`); ("K", s), ("inv_K", s) (B, 4, 4); ("ts", f) (B,).
        outputs: the model's outputs for this phase's heads.
        phase: decides the heads in use, the trained networks and automasking.
        step: step within the phase, for the weight ramp.
        planes: {scale: (B, 3, 1)} road planes to use instead of fitting them (for tests).
        generator: seeds the RANSAC sampling and the automasking tie-break noise.
    """
    config = config or LossConfig()
    coef = coefficients(config, step, steps_per_epoch)
    sources = [f for f in frame_ids if f != 0]
    target = batch["color", 0, 0]
    batch_size, _, height, width = target.shape
    K, inv_K = batch["K", 0], batch["inv_K", 0]

    train_depth = phase.trains("Depth")
    train_flow = phase.trains("CmpFlow") and phase.complete_flow
    train_mask = phase.trains("MotMask") and phase.motion_mask

    error_to_target = PhotometricError(target, config.ssim_weight)
    identity_error = None
    if phase.automask:
        # Independent of the networks, so computed once for all scales.
        identity_error = torch.cat([error_to_target(batch["color", f, 0]) for f in sources], 1)
        noise = torch.randn(identity_error.shape, generator=generator, dtype=identity_error.dtype)
        identity_error = identity_error + noise.to(identity_error.device) * 1e-5  # breaks ties with the warped error

    terms = {t: target.new_zeros(()) for t in TERMS}
    per_scale: dict[int, torch.Tensor] = {}
    total = target.new_zeros(())
    visuals: dict = {}

    full_size = _FullSize(height, width)
    rays = inv_K[:, :3, :3] @ pixel_grid(height, width, dtype=target.dtype, device=target.device)  # (B, 3, H*W)
    camera = grid_camera(K, height, width)  # (B, 3, 4): 3D points to grid coordinates

    for scale in scales:
        part = {t: target.new_zeros(()) for t in TERMS}
        divisor = 2**scale
        disp = outputs["disp", 0, scale]
        _, depth = disp_to_depth(full_size(disp), min_depth, max_depth)
        points = depth.reshape(batch_size, 1, -1) * rays  # (B, 3, H*W)
        color = batch["color", 0, scale]
        weights = edge_weights(color) if train_depth or train_flow or train_mask else None
        h, w = disp.shape[-2:]

        errors = []
        for frame in sources:
            T = outputs["cam_T_cam", 0, frame]
            ego_flow = complete = residual = independent = None
            if phase.motion_mask or keep_visuals:
                # T p - p as one product: (R - I) p + t.
                identity = torch.eye(3, dtype=T.dtype, device=T.device)
                ego_flow = torch.baddbmm(T[:, :3, 3:], T[:, :3, :3] - identity, points)  # (B, 3, H*W)
            if phase.complete_flow:
                flow = outputs["complete_flow", frame, scale]
                # Scaled by the time step before upsampling (both are linear), on the smaller map.
                flow = flow * batch["ts", frame].reshape(batch_size, 1, 1, 1).to(flow.dtype)
                complete = _resize(flow, (height, width)).reshape(batch_size, 3, -1)
                if ego_flow is not None:
                    residual = complete - ego_flow
                if phase.motion_mask:
                    mask = full_size(outputs["motion_mask", frame, scale]).reshape(batch_size, 1, -1)
                    # The point moves by the masked residual: points + residual * mask.
                    grid = project_to_grid(torch.addcmul(points, residual, mask), camera @ T, height, width)
                    independent = residual * mask if keep_visuals else None
                else:
                    # Without a mask the complete flow alone carries the point into the source frame.
                    independent = residual
                    grid = project_to_grid(points + complete, camera, height, width)
            else:
                grid = project_to_grid(points, camera @ T, height, width)

            warped = F.grid_sample(batch["color", frame, 0], grid, padding_mode="border", align_corners=True)
            errors.append(error_to_target(warped))

            if keep_visuals and scale == 0:
                visuals[frame] = {
                    "warped": warped.detach(),
                    "ego_flow": ego_flow.detach().reshape(batch_size, 3, height, width),
                    "independent_flow": None if independent is None else independent.detach().reshape(batch_size, 3, height, width),
                    "complete_flow": None if complete is None else complete.detach().reshape(batch_size, 3, height, width),
                }

            if train_flow:
                if coef["c_smooth"] > 0:
                    part["c_smooth"] = part["c_smooth"] + edge_aware_smoothness(
                        outputs["complete_flow", frame, scale], weights=weights
                    ) / divisor / len(sources)
                if phase.motion_mask and coef["c_consistency"] > 0:
                    residual_small = _resize(residual.reshape(batch_size, 3, height, width), (h, w))
                    still = (disp > config.mask_disp_threshold).detach() * (1 - outputs["motion_mask", frame, scale].detach())
                    part["c_consistency"] = part["c_consistency"] + torch.mean(still * residual_small.abs()) / divisor / len(
                        sources
                    )
            if train_mask:
                if coef["m_sparsity"] > 0:
                    with torch.no_grad():
                        grid_ego = project_to_grid(points, camera @ T, height, width)
                        grid_complete = project_to_grid(points + complete, camera, height, width)
                    part["m_sparsity"] = part["m_sparsity"] + _sparsity(
                        outputs["motion_prob", frame, scale], grid_ego, grid_complete
                    ) / divisor / len(sources)
                if coef["m_smooth"] > 0:
                    part["m_smooth"] = part["m_smooth"] + edge_aware_smoothness(
                        outputs["motion_mask", frame, scale], weights=weights
                    ) / divisor / len(sources)

        warped_error = torch.cat(errors, 1)
        combined = warped_error if identity_error is None else torch.cat([identity_error, warped_error], 1)
        best = combined if combined.shape[1] == 1 else combined.min(dim=1).values
        part["p_photo"] = best.mean()
        if keep_visuals and scale == 0 and identity_error is not None:
            visuals["automask"] = (combined.argmin(dim=1, keepdim=True) >= identity_error.shape[1]).float()

        if train_depth:
            if coef["d_smooth"] > 0:
                normalised = disp / (disp.mean(dim=(2, 3), keepdim=True) + 1e-7)
                part["d_smooth"] = edge_aware_smoothness(normalised, weights=weights) / divisor
            if coef["d_ground"] > 0 and phase.motion_mask:
                plane = None if planes is None else planes[scale]
                part["d_ground"] = _below_ground(disp, batch["inv_K", scale], plane, config, min_depth, max_depth, generator) / divisor

        scale_loss = target.new_zeros(())
        for term in TERMS:
            scale_loss = scale_loss + part[term] * coef[term]
            terms[term] = terms[term] + part[term]
        per_scale[scale] = scale_loss
        total = total + scale_loss / len(scales)

    return LossResult(total=total, terms=terms, per_scale=per_scale, coefficients=coef, visuals=visuals)


def _sparsity(logits: torch.Tensor, grid_ego: torch.Tensor, grid_complete: torch.Tensor) -> torch.Tensor:
    """BCE towards "static" on pixels whose complete-flow sample moves less than average from the ego sample.

    logits: (B, 1, h, w); grids: (B, H, W, 2) full resolution.
    """
    static = static_pixels(grid_ego, grid_complete, logits.shape[-2:])
    counts = static.sum(dim=(1, 2, 3))
    if not bool((counts > 0).all()):
        return logits.new_zeros(())
    # The mean over the static pixels, as a masked sum (no gather of a data-dependent size).
    losses = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    return (losses * static).sum() / counts.sum()


def static_pixels(grid_ego: torch.Tensor, grid_complete: torch.Tensor, size) -> torch.Tensor:
    """(B, 1, h, w) bool: pixels whose complete-flow sample lies closer to the ego-motion sample than the
    batch's mean gap; the sparsity term pushes the mask towards 0 there. Grids: (B, H, W, 2); size: (h, w)."""
    ego = _resize(grid_ego.detach().permute(0, 3, 1, 2), size)
    complete = _resize(grid_complete.detach().permute(0, 3, 1, 2), size)
    gap = ((ego - complete) ** 2).sum(1, keepdim=True)
    return gap < gap.mean()


def _below_ground(
    disp: torch.Tensor,
    inv_K: torch.Tensor,
    plane: torch.Tensor | None,
    config: LossConfig,
    min_depth: float,
    max_depth: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Mean amount by which disparity (B, 1, h, w) falls short of the road plane's (lifted by the tolerance)."""
    batch_size, _, h, w = disp.shape
    if plane is None:
        _, depth = disp_to_depth(disp.detach(), min_depth, max_depth)
        points = backproject(depth, inv_K)[:, :3].reshape(batch_size, 3, h, w)
        plane = fit_ground_plane(
            points,
            prior=config.ground_prior,
            tolerance=config.ground_tolerance,
            points_per_hypothesis=config.ground_points_per_hypothesis,
            hypotheses=config.ground_hypotheses,
            generator=generator,
            refit=config.ground_refit,
        )
    lifted = plane.detach().clone()
    lifted[:, 2] += config.ground_tolerance
    road_depth = ground_plane_depth(lifted, inv_K, h, w, max_depth)
    road_disp = depth_to_disp(road_depth, min_depth, max_depth)
    # A point nearer than the road under it (larger disparity) is fine; one beyond it lies below the road.
    below = torch.where(road_depth == max_depth, torch.zeros_like(disp), disp - road_disp).clamp(max=0)
    return -below.mean()
