"""Visualisation runner: fed the true depth, ego-motion, mask and scene flow of synthetic scenes, the
panels show what they claim; videos, chosen frames and bad input."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from dynamo_core.errors import ConfigError, DataError
from dynamo_core.evaluation import visualize_runner
from dynamo_core.geometry import backproject, depth_to_disp, transform_points
from dynamo_core.synthetic import generate_dataset
from dynamo_core.visualize import write_mp4

from runner_helpers import HEIGHT, WIDTH, checkpoint, options  # noqa: F401  (fixture)

FRAMES = 5
SEGMENT = "test/seq-0000"
CAMERA_IN_VEHICLE = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("visualize") / "synthetic"
    generate_dataset(out, sequences=1, frames=FRAMES, height=HEIGHT, width=WIDTH, seed=3, test_sequences=1)
    return out


class TrueScene(torch.nn.Module):
    """Stands in for the model with the rendered ground truth of each frame (found by its pixels):
    disparity, the camera motion towards frame -1, the moving-object mask and a complete flow of
    ego flow plus the objects' own motion."""

    def __init__(self, camera: Path):
        super().__init__()
        self.camera = camera
        rgb = camera / "rgb" / "original"
        self.images = {k: torch.from_numpy(np.array(Image.open(rgb / f"{k:06d}.jpg"))) for k in range(FRAMES)}
        self.poses = np.loadtxt(camera / "odometry.txt").reshape(-1, 4, 4)

    def frame_of(self, image: torch.Tensor) -> int:
        pixels = (image.permute(1, 2, 0) * 255).round().to(torch.uint8)
        (frame,) = [k for k, known in self.images.items() if torch.equal(known, pixels)]
        return frame

    def set_heads(self, complete_flow: bool, motion_mask: bool) -> None:
        pass

    def forward(self, batch: dict, depth_frames=(0,)) -> dict:
        disps, motions, flows, masks = [], [], [], []
        for i, image in enumerate(batch["color_aug", 0, 0]):
            k = self.frame_of(image)
            depth = np.load(self.camera / "depth_dense" / f"{k:06d}.npy").astype(np.float32)
            depth[depth <= 0] = 100.0
            depth = torch.from_numpy(depth)[None, None]
            # Points of camera k in camera k-1: through the world, in camera axes.
            T = np.linalg.inv(CAMERA_IN_VEHICLE) @ np.linalg.inv(self.poses[k - 1]) @ self.poses[k] @ CAMERA_IN_VEHICLE
            T = torch.from_numpy(T).float()[None]
            points = backproject(depth, batch["inv_K", 0][i : i + 1].float())
            ego = (transform_points(T, points) - points)[:, :3].reshape(1, 3, HEIGHT, WIDTH)
            own = -torch.from_numpy(np.load(self.camera / "scene_flow" / f"{k:06d}.npy").astype(np.float32))
            masks.append(torch.from_numpy(self.motion(k) == 1).float()[None, None])
            disps.append(depth_to_disp(depth))
            motions.append(T)
            flows.append(ego + own.permute(2, 0, 1)[None])
        return {
            ("disp", 0, 0): torch.cat(disps),
            ("cam_T_cam", 0, -1): torch.cat(motions),
            ("complete_flow", -1, 0): torch.cat(flows),
            ("motion_mask", -1, 0): torch.cat(masks),
        }

    def motion(self, frame: int) -> np.ndarray:
        return np.load(self.camera / "mask" / f"{frame:06d}.npz")["motion"]


@pytest.fixture
def true_scene(monkeypatch, scenes):
    model = TrueScene(scenes / SEGMENT / "FRONT")
    prepare = visualize_runner.prepare

    def prepare_with_truth(*args, **kwargs):
        context = prepare(*args, **kwargs)
        context._model = model
        return context

    monkeypatch.setattr(visualize_runner, "prepare", prepare_with_truth)
    return model


def tiles(path: Path, count: int) -> list[np.ndarray]:
    panel = np.array(Image.open(path).convert("RGB"))
    assert panel.shape == (HEIGHT, count * WIDTH, 3)
    return [panel[:, i * WIDTH : (i + 1) * WIDTH].astype(int) for i in range(count)]


def test_panels_show_what_they_claim(true_scene, checkpoint, scenes, tmp_path):
    result = visualize_runner.run_visualize(options(checkpoint, scenes, tmp_path), panels=visualize_runner.PANELS)
    (video,) = result.videos
    assert video.frames == list(range(1, FRAMES - 1))
    frame = 2
    image, disp, ego, independent, mask, complete, total = tiles(video.frames_folder / f"{frame:06d}.png", 7)
    moving = true_scene.motion(frame) == 1
    assert moving.any() and (~moving).any()

    np.testing.assert_array_equal(image, true_scene.images[frame].numpy())
    # Hot colour map: 1 is white, 0 is near black.
    assert (mask[moving] == 255).all()
    assert (mask[~moving].max(axis=-1) < 20).all()
    # Plasma: the near road at the bottom is bright yellow, the far street centre dark.
    assert disp[-4:, :, 1].mean() > 200 and disp[HEIGHT // 3, WIDTH // 2, 1] < 100
    # Independent flow is still (white) wherever the mask is off, and moves on the moving objects.
    assert (independent[~moving] == 255).all()
    assert (independent[moving] < 250).any()
    # Ego flow: the near road moves most, so it is drawn strongest.
    strength = 255 - ego.min(axis=-1)
    assert strength[-4:].mean() > 2 * strength[HEIGHT // 3 : HEIGHT // 2].mean()
    # Opposite sides of the road move in opposite directions: different hues at the bottom corners.
    left, right = ego[-2, 2], ego[-2, -3]
    assert np.abs(left - right).max() > 100
    assert complete.shape == total.shape == image.shape


def test_one_flow_scale_per_video(true_scene, checkpoint, scenes, tmp_path):
    result = visualize_runner.run_visualize(options(checkpoint, scenes, tmp_path), panels=("ego_flow",))
    (video,) = result.videos
    strengths = [(255 - tiles(video.frames_folder / f"{k:06d}.png", 1)[0].min(axis=-1)).max() for k in video.frames]
    # The strongest motion of the whole video is drawn at full strength, the other frames' relative to it.
    assert max(strengths) >= 254
    single = visualize_runner.run_visualize(options(checkpoint, scenes, tmp_path / "one"), panels=("ego_flow",),
                                            frames=[f"{SEGMENT} 1"])
    assert single.videos[0].max_flow <= video.max_flow
    alone = (255 - tiles(single.videos[0].frames_folder / "000001.png", 1)[0].min(axis=-1)).max()
    assert alone >= 254 and alone >= strengths[0]


def test_video_holds_every_panel_frame(true_scene, checkpoint, scenes, tmp_path):
    result = visualize_runner.run_visualize(options(checkpoint, scenes, tmp_path))
    (video,) = result.videos
    assert video.video == tmp_path / "outputs" / "scratch_synthetic" / "visualize" / "seq-0000.mp4"
    frames = np.stack(list(iio.imiter(video.video)))
    assert frames.shape == (len(video.frames), HEIGHT, 5 * WIDTH, 3)
    assert sorted(p.name for p in video.frames_folder.iterdir()) == [f"{k:06d}.png" for k in video.frames]
    assert result.fps == 10.0
    assert not [p for p in video.video.parent.iterdir() if p.name.startswith(".")], "no temporary files are left"


def test_chosen_frames(true_scene, checkpoint, scenes, tmp_path):
    result = visualize_runner.run_visualize(options(checkpoint, scenes, tmp_path),
                                            frames=[f"{SEGMENT} 3", f"{SEGMENT} 1"], fps=4)
    (video,) = result.videos
    assert video.frames == [3, 1] and result.fps == 4.0


def test_chosen_frame_without_neighbours(checkpoint, scenes, tmp_path):
    with pytest.raises(DataError, match=f"--frames '{SEGMENT} 0': frames -1 and 1 must both exist"):
        visualize_runner.run_visualize(options(checkpoint, scenes, tmp_path), frames=[f"{SEGMENT} 0"])


def test_unknown_panel(checkpoint, scenes, tmp_path):
    with pytest.raises(ConfigError, match="--panels takes names from image, disp"):
        visualize_runner.run_visualize(options(checkpoint, scenes, tmp_path), panels=("image", "depth"))


def test_frame_rates():
    assert visualize_runner.default_fps("nuscenes") == 13.0
    assert {visualize_runner.default_fps(d) for d in ("kitti", "waymo", "synthetic")} == {10.0}


def test_interrupted_video_leaves_nothing(tmp_path):
    def frames():
        yield np.zeros((32, 32, 3), dtype=np.uint8)
        raise RuntimeError("stopped")

    with pytest.raises(RuntimeError):
        write_mp4(frames(), tmp_path / "clip.mp4")
    assert list(tmp_path.iterdir()) == []
