"""The Predictor API on the tiny KITTI, Waymo and nuScenes frames with a scratch checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dynamo_core.geometry import disp_to_depth
from dynamo_core.prediction.inputs import read_rgb
from predict_helpers import HEIGHT, TINY_KITTI, TINY_NUSCENES, TINY_WAYMO, WIDTH, checkpoint, frames_of, predictor  # noqa: F401

pytestmark = pytest.mark.sample_data  # built from, or compared with, the released sample frames


@pytest.mark.parametrize("folder", [TINY_KITTI, TINY_WAYMO, TINY_NUSCENES], ids=["kitti", "waymo", "nuscenes"])
def test_depth_equals_the_forward_upsampled_to_the_image(predictor, folder):
    path = frames_of(folder)[0]
    image = read_rgb(path)
    depth = predictor.predict_depth([path])[0]
    assert depth.dtype == np.float32 and depth.shape == image.shape[:2]

    # The plain path: resize as training does, forward, upsample disparity, convert.
    x = predictor.preprocess(image)[None]
    model = predictor.model
    with torch.no_grad():
        disp = model.depth_dec(model.depth_enc(x.contiguous()))[0]
    disp = F.interpolate(disp, image.shape[:2], mode="bilinear", align_corners=False)
    _, expected = disp_to_depth(disp, model.config.min_depth, model.config.max_depth)
    np.testing.assert_allclose(depth, expected[0, 0].numpy(), rtol=1e-5, atol=1e-5)


def test_batches_agree_with_single_images(predictor):
    paths = frames_of(TINY_KITTI)
    together = predictor.predict_depth(paths, batch_size=3)
    alone = [predictor.predict_depth([p], batch_size=1)[0] for p in paths]
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_sequence_gives_motion_inside_and_poses_between(predictor):
    paths = frames_of(TINY_KITTI)
    result = predictor.predict_sequence(paths)
    height, width = read_rgb(paths[0]).shape[:2]
    assert len(result.depth) == 3 and all(d.shape == (height, width) for d in result.depth)
    assert result.mask[0] is None and result.mask[2] is None
    assert result.mask[1].shape == (height, width) and 0 <= result.mask[1].min() <= result.mask[1].max() <= 1
    assert result.flow[1].shape == (height, width, 3)
    assert len(result.relative_poses) == 2
    trajectory = result.trajectory
    assert trajectory.shape == (3, 4, 4)
    np.testing.assert_allclose(trajectory[0], np.eye(4))
    np.testing.assert_allclose(trajectory[2], result.relative_poses[0] @ result.relative_poses[1], atol=1e-12)


def test_frames_of_another_size_get_depth_but_no_motion_with_them(predictor):
    a, b, c = (read_rgb(p) for p in frames_of(TINY_KITTI))
    smaller = np.ascontiguousarray(c[::2, ::2])
    result = predictor.predict_sequence([a, b, smaller, a])
    assert result.depth[2].shape == smaller.shape[:2]
    assert result.mask[1] is None and result.mask[2] is None  # each has a neighbour of another size
    assert result.relative_poses[0] is not None and result.relative_poses[1] is None and result.relative_poses[2] is None
    assert np.isnan(result.trajectory[2]).all()


def test_a_depth_only_checkpoint_predicts_depth(tmp_path):
    from dynamo_core.errors import CheckpointError
    from dynamo_core.prediction import Predictor
    from predict_helpers import scratch_checkpoint

    folder = scratch_checkpoint(tmp_path / "depth_only", modules=("depth_enc", "depth_dec"))
    depth_only = Predictor.from_checkpoint(folder, device="cpu")
    assert not depth_only.has_motion
    assert depth_only.predict_depth([np.zeros((40, 60, 3), np.uint8)])[0].shape == (40, 60)
    with pytest.raises(CheckpointError):
        depth_only.predict_sequence([np.zeros((40, 60, 3), np.uint8)] * 3)
    assert depth_only.predict_sequence([np.zeros((40, 60, 3), np.uint8)] * 3, motion=False).mask == [None] * 3


def test_monodepth2_checkpoint(tmp_path):
    from dynamo_core.prediction import Predictor
    from predict_helpers import scratch_checkpoint

    folder = scratch_checkpoint(tmp_path / "md2", depth_model="monodepthv2", modules=("depth_enc", "depth_dec"))
    md2 = Predictor.from_checkpoint(folder, device="cpu")
    assert md2.config.depth_model == "monodepthv2" and (md2.height, md2.width) == (HEIGHT, WIDTH)
    assert md2.predict_depth([np.full((50, 70, 3), 128, np.uint8)])[0].shape == (50, 70)


def test_bad_precision_is_refused(checkpoint):
    from dynamo_core.errors import ConfigError
    from dynamo_core.prediction import Predictor

    with pytest.raises(ConfigError, match="fp16"):
        Predictor.from_checkpoint(checkpoint, device="cpu", precision="fp16")
    with pytest.raises(ConfigError, match="precision"):
        Predictor.from_checkpoint(checkpoint, device="cpu", precision="fp8")
