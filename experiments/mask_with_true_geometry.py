"""Train the motion networks with the synthetic scenes' true depth or ego-motion in place of the networks'.

An experiment, never part of training or the demo: it asks whether the motion mask can learn on these
scenes once depth and ego-motion are right, and which of the two holds it back when they are learnt.

It runs `motion_init` and then `mask_init` on the complete-flow and motion-mask networks only, with
the published objective, and feeds the loss

- depth: the rendered dense depth (`--depth true`), or a `disp_init` checkpoint's depth (`--depth learnt`),
  which `--depth learnt-scaled` rescales to the true median of each image;
- ego-motion: the true relative camera poses (`--pose true`), or the checkpoint's pose network
  (`--pose learnt`), which `--pose learnt-scaled` rescales to the true translation length.

`--world-scale` then multiplies every depth and translation by one factor: the same scene in other
units, as the networks, which learn depth only up to scale, see it. `--jitter` colour-jitters the
motion networks' input frames as training does. `--network-scales` takes the coarser scales'
disparities from the checkpoint's depth decoder, as training does, instead of resizing the finest
one. `--train-pose` trains the checkpoint's pose network along with the motion networks in
`mask_init`, as the published phase does.

The ramped weights (sparsity, smoothness, consistency) reach full strength after a third of each
phase, as in a phase of one epoch.

Every `--every` steps it prints one JSON line measured on every test frame at the training size: the
mask's best F1 and average precision, its mean on moving and on other pixels, the share of moving
pixels that the sparsity term labels "static", and the mean squared gap between the complete-flow and
ego-motion samples (grid units) on moving and on other pixels.

    python experiments/mask_with_true_geometry.py --data DATA --motion-steps 300 --mask-steps 300
    python experiments/mask_with_true_geometry.py --data DATA --depth learnt --pose learnt -l CKPT --flow-start ego

DATA is a folder made by `dynamo demo` (OUT/data) or by `dynamo_core.synthetic.generate_dataset`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dynamo_core import losses
from dynamo_core.checkpoints import load_weights
from dynamo_core.config import ModelConfig, default_scales
from dynamo_core.data.augment import sample_augmentation
from dynamo_core.evaluation.motseg_metrics import MotionSegAccumulator
from dynamo_core.geometry import depth_to_disp, disp_to_depth, grid_camera, pixel_grid, pose_vec_to_matrix, project_to_grid
from dynamo_core.model import DynamoModel
from dynamo_core.training.trainer import add_color_pyramid

MIN_DEPTH, MAX_DEPTH = 0.1, 100.0
# Camera axes (x right, y down, z forward) in the vehicle axes of odometry.txt (x forward, y left, z up).
CAMERA_IN_VEHICLE = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
SOURCES = (-1, 1)


def axis_angle(rotation: np.ndarray) -> np.ndarray:
    angle = math.acos(max(-1.0, min(1.0, (np.trace(rotation) - 1) / 2)))
    if angle < 1e-8:
        return np.zeros(3)
    axis = np.array([rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0], rotation[1, 0] - rotation[0, 1]])
    return axis / (2 * math.sin(angle)) * angle


def load_split(root: Path, split: str, height: int, width: int) -> dict:
    """Every frame with both neighbours: colours (N, 3, 3, H, W) for frames -1, 0, 1; true depth (N, 1, H, W);
    target-to-source transforms (N, 2, 4, 4) and their pose-network form (axis-angle, translation) (N, 2, 3);
    moving (N, H, W) bool; K (3, 3) normalised."""
    items: dict[str, list] = {key: [] for key in ("colour", "depth", "transform", "axis_angle", "translation", "moving")}
    K = None
    for front in sorted(root.glob(f"{split}/seq-*/FRONT")):
        poses = np.loadtxt(front / "odometry.txt", ndmin=2).reshape(-1, 4, 4) @ CAMERA_IN_VEHICLE
        K = np.array(json.loads((front / "rgb" / "cam.json").read_text())["intrinsic_mat"], dtype=np.float64)[:3, :3]
        images = {}
        for f in range(len(poses)):
            with Image.open(front / "rgb" / "downsample" / f"{f:06d}.jpg") as im:
                rgb = im.convert("RGB").resize((width, height), Image.LANCZOS)
            images[f] = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255).permute(2, 0, 1)
        for f in range(1, len(poses) - 1):
            items["colour"].append(torch.stack([images[f - 1], images[f], images[f + 1]]))
            depth = np.load(front / "depth_dense" / f"{f:06d}.npy").astype(np.float32)
            depth[depth == 0] = MAX_DEPTH  # sky
            items["depth"].append(F.interpolate(torch.from_numpy(depth)[None, None], size=(height, width), mode="nearest")[0])
            transforms = [np.linalg.inv(poses[f + k]) @ poses[f] for k in SOURCES]
            items["transform"].append(torch.tensor(np.array(transforms), dtype=torch.float32))
            # The pose network predicts the inverse transform (see pose_vec_to_matrix(invert=True)).
            inverses = [np.linalg.inv(t) for t in transforms]
            items["axis_angle"].append(torch.tensor(np.array([axis_angle(m[:3, :3]) for m in inverses]), dtype=torch.float32))
            items["translation"].append(torch.tensor(np.array([m[:3, 3] for m in inverses]), dtype=torch.float32))
            with np.load(front / "mask" / f"{f:06d}.npz", allow_pickle=False) as masks:
                moving = torch.from_numpy((masks["motion"] == 1).astype(np.float32))[None, None]
            items["moving"].append(F.interpolate(moving, size=(height, width), mode="nearest")[0, 0] > 0.5)
    if K is None:
        raise SystemExit(f"no {split}/seq-*/FRONT folders under {root}")
    data = {key: torch.stack(values) for key, values in items.items()}
    data["depth"] = data["depth"].clamp(MIN_DEPTH, MAX_DEPTH)
    data["K"] = K
    return data


class Geometry:
    """Depth and ego-motion outputs for a set of items, true or from a checkpoint's networks."""

    def __init__(self, depth: str, pose: str, learnt: DynamoModel | None, scales, world_scale: float = 1.0,
                 network_scales: bool = False):
        self.depth, self.pose, self.learnt, self.scales = depth, pose, learnt, scales
        self.world_scale = world_scale
        self.network_scales = network_scales  # coarse disparities from the depth decoder, as in training
        self.train_pose = False  # gradients reach the learnt pose network; set for mask_init

    def outputs(self, data: dict, index: torch.Tensor) -> dict:
        true_depth = data["depth"][index]
        learnt: dict = {}
        if self.learnt is not None:
            inputs = {("color_aug", k, 0): data["colour"][index, j] for j, k in enumerate((-1, 0, 1))}
            with torch.no_grad():
                self.learnt.predict_depth(inputs, learnt)
            with torch.set_grad_enabled(self.train_pose and torch.is_grad_enabled()):
                self.learnt.predict_poses(inputs, learnt)
        depth = true_depth
        if self.depth != "true":
            depth = disp_to_depth(learnt["disp", 0, 0], MIN_DEPTH, MAX_DEPTH)[1]
            if self.depth == "learnt-scaled":
                ratio = true_depth.flatten(1).median(1).values / depth.flatten(1).median(1).values
                depth = (depth * ratio[:, None, None, None]).clamp(MIN_DEPTH, MAX_DEPTH)
        depth = (depth * self.world_scale).clamp(MIN_DEPTH, MAX_DEPTH)
        out = {}
        for s in self.scales:
            if s and self.network_scales:
                coarse = disp_to_depth(learnt["disp", 0, s], MIN_DEPTH, MAX_DEPTH)[1] * self.world_scale
                out["disp", 0, s] = depth_to_disp(coarse.clamp(MIN_DEPTH, MAX_DEPTH), MIN_DEPTH, MAX_DEPTH)
                continue
            out["disp", 0, s] = depth_to_disp(F.interpolate(depth, scale_factor=0.5**s, mode="nearest") if s else depth,
                                              MIN_DEPTH, MAX_DEPTH)
        for j, k in enumerate(SOURCES):
            if self.pose == "true":
                rotation, translation = data["axis_angle"][index, j][:, None], data["translation"][index, j][:, None]
            else:
                rotation, translation = learnt["axisangle", 0, k], learnt["translation", 0, k]
                if self.pose == "learnt-scaled":
                    ratio = data["translation"][index, j].norm(dim=-1) / translation[:, 0].norm(dim=-1)
                    translation = translation * ratio[:, None, None]
            translation = translation * self.world_scale
            out["axisangle", 0, k], out["translation", 0, k] = rotation, translation
            out["cam_T_cam", 0, k] = pose_vec_to_matrix(rotation, translation, invert=True)
        return out


def make_batch(data: dict, index: torch.Tensor, height: int, width: int, scales,
               jitter: torch.Generator | None = None) -> dict:
    """With `jitter`, the motion networks see each item's frames colour-jittered as in training (a new
    jitter per frame, on half of the items); the loss compares the frames as they are."""
    batch = {}
    for j, k in enumerate((-1, 0, 1)):
        batch["color", k, 0] = batch["color_aug", k, 0] = data["colour"][index, j]
    if jitter is not None:
        augmentations = [sample_augmentation(jitter) for _ in index]
        for j, k in enumerate((-1, 0, 1)):
            batch["color_aug", k, 0] = torch.stack([
                a.jitters[j](image) if a.jitters else image for a, image in zip(augmentations, batch["color", k, 0])])
    for s in scales:
        K = np.eye(4)
        K[:3, :3] = data["K"]
        K[0] *= width // 2**s
        K[1] *= height // 2**s
        K = torch.tensor(K, dtype=torch.float32)[None].repeat(len(index), 1, 1)
        batch["K", s], batch["inv_K", s] = K, torch.linalg.inv(K)
    for k in SOURCES:
        batch["ts", k] = torch.ones(len(index))
    add_color_pyramid(batch, scales)
    return batch


@torch.no_grad()
def measure(model: DynamoModel, geometry: Geometry, test: dict, height: int, width: int, scales) -> dict:
    was_training = model.training
    model.eval()
    learnt_was_training = geometry.learnt is not None and geometry.learnt.training
    if geometry.learnt is not None:
        geometry.learnt.eval()  # as the trainer's monitor measures: batch-norm on running statistics
    model.set_heads(True, True)
    sweep = MotionSegAccumulator()  # the demo's and `dynamo eval motseg`'s best F1 and AP
    masks, moving, labelled, gaps_moving, gaps_other = [], [], [], [], []
    for start in range(0, len(test["colour"]), 8):
        index = torch.arange(start, min(start + 8, len(test["colour"])))
        batch = make_batch(test, index, height, width, scales)
        out = geometry.outputs(test, index)
        model.predict_motion(batch, out)
        truth = test["moving"][index]
        sweep.update(out["motion_mask", 1, 0], truth.long())
        masks.append(out["motion_mask", 1, 0][:, 0].flatten())
        moving.append(truth.flatten())
        depth = disp_to_depth(out["disp", 0, 0], MIN_DEPTH, MAX_DEPTH)[1]
        points = depth.reshape(len(index), 1, -1) * (batch["inv_K", 0][:, :3, :3] @ pixel_grid(height, width))
        camera = grid_camera(batch["K", 0], height, width)
        ego = project_to_grid(points, camera @ out["cam_T_cam", 0, 1], height, width)
        complete = project_to_grid(points + out["complete_flow", 1, 0].reshape(len(index), 3, -1), camera, height, width)
        labelled.append(losses.static_pixels(ego, complete, (height, width))[:, 0][truth].float())
        gap = ((ego - complete) ** 2).sum(-1)
        gaps_moving.append(gap[truth])
        gaps_other.append(gap[~truth])
    model.train(was_training)
    if learnt_was_training:
        geometry.learnt.train()
    mask, truth = torch.cat(masks), torch.cat(moving)
    result = sweep.compute()
    return {"mask_f1": float(result.best_f1), "mask_ap": float(result.average_precision), "mask_moving": float(mask[truth].mean()), "mask_other": float(mask[~truth].mean()),
            "moving_labelled_static": float(torch.cat(labelled).mean()),
            "gap_moving": float(torch.cat(gaps_moving).mean()), "gap_other": float(torch.cat(gaps_other).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a synthetic dataset folder (train/ and test/)")
    parser.add_argument("--depth", choices=("true", "learnt", "learnt-scaled"), default="true")
    parser.add_argument("--pose", choices=("true", "learnt", "learnt-scaled"), default="true")
    parser.add_argument("-l", "--checkpoint", type=Path, help="a disp_init checkpoint folder, for learnt depth or pose")
    parser.add_argument("--world-scale", type=float, default=1.0, help="multiplies every depth and translation")
    parser.add_argument("--flow-start", choices=("random", "ego"), default="random")
    parser.add_argument("--jitter", action="store_true",
                        help="colour-jitter the motion networks' input frames as training does (one jitter per frame)")
    parser.add_argument("--network-scales", action="store_true",
                        help="take the coarser scales' disparities from the checkpoint's depth decoder, as training "
                             "does, instead of resizing the finest (needs --depth learnt)")
    parser.add_argument("--train-pose", action="store_true",
                        help="train the checkpoint's pose network in mask_init (needs --pose learnt or learnt-scaled)")
    parser.add_argument("--motion-steps", type=int, default=300)
    parser.add_argument("--mask-steps", type=int, default=300)
    parser.add_argument("--learning-rate", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--every", type=int, default=50, help="steps between measurements")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if "learnt" in args.depth + args.pose and args.checkpoint is None:
        parser.error("--depth learnt and --pose learnt need -l/--checkpoint")
    if args.network_scales and args.depth != "learnt":
        parser.error("--network-scales takes the checkpoint's own coarse disparities; add --depth learnt")
    if args.train_pose and args.pose == "true":
        parser.error("--train-pose trains the checkpoint's pose network; add --pose learnt")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = dict(depth_model="monodepthv2", weights_init="scratch", height=args.height, width=args.width,
                  scales=default_scales("monodepthv2"))
    scales = tuple(config["scales"])
    learnt = None
    if args.checkpoint is not None:
        learnt = DynamoModel(ModelConfig(**config))
        load_weights(learnt, args.checkpoint, height=args.height, width=args.width)
        learnt.eval()
    model = DynamoModel(ModelConfig(**config, flow_start=args.flow_start))
    geometry = Geometry(args.depth, args.pose, learnt, scales, args.world_scale, args.network_scales)
    train = load_split(args.data, "train", args.height, args.width)
    test = load_split(args.data, "test", args.height, args.width)
    generator = torch.Generator().manual_seed(args.seed)
    jitter = torch.Generator().manual_seed(args.seed + 1) if args.jitter else None  # leaves the batch order as it is

    def report(phase: str, step: int, started: float) -> None:
        record = {"phase": phase, "step": step, "seconds": round(time.perf_counter() - started, 1)}
        record.update({k: round(v, 6) for k, v in measure(model, geometry, test, args.height, args.width, scales).items()})
        print(json.dumps(record), flush=True)

    for name, steps in (("motion_init", args.motion_steps), ("mask_init", args.mask_steps)):
        phase = losses.PHASES[name]
        model.set_heads(phase.complete_flow, phase.motion_mask)
        # Depth and pose come from the geometry, so only the motion networks learn, and the pose
        # network too with --train-pose, in train mode as in the trainer.
        parameters = model.parameters_of([n for n in phase.networks if n in ("CmpFlow", "MotMask")])
        if args.train_pose and "Pose" in phase.networks:
            geometry.train_pose = True
            learnt.train()
            parameters += learnt.parameters_of(["Pose"])
        optimizer = torch.optim.Adam(parameters, lr=args.learning_rate * phase.lr_factor)
        started = time.perf_counter()
        for step in range(steps):
            if step % args.every == 0:
                report(name, step, started)
                model.set_heads(phase.complete_flow, phase.motion_mask)
            index = torch.randint(0, len(train["colour"]), (args.batch_size,), generator=generator)
            batch = make_batch(train, index, args.height, args.width, scales, jitter)
            out = geometry.outputs(train, index)
            model.predict_motion(batch, out)
            loss = losses.compute(batch, out, phase, step, steps, scales=scales, generator=generator).total
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        report(name, steps, started)


if __name__ == "__main__":
    main()
