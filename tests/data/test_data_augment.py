"""Training augmentation: reproducible draws, a jitter per frame, consistent flips."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from conftest import SHARED
from data_scenes import write_scene
from dynamo_core.data import ColorJitter, build_dataset, item_generator, sample_augmentation
from dynamo_core.data.augment import shift_hue

SIZE = (48, 64)


def _scene_dataset(root, is_train=True, seed=0, **kwargs):
    return build_dataset("synthetic", root, ["seq-a 1"] * 8, height=SIZE[0], width=SIZE[1], img_type="downsample",
                         is_train=is_train, seed=seed, **kwargs)


def _epoch_where(dataset, index, flip: bool | None = None, jitter: bool | None = None) -> int:
    for epoch in range(200):
        dataset.set_epoch(epoch)
        augment = dataset.augmentation(index)
        if (flip is None or augment.flip == flip) and (jitter is None or (augment.jitters is not None) == jitter):
            return epoch
    raise AssertionError("no such epoch in 200 draws")


def _assert_items_equal(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        if torch.is_tensor(a[key]):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


def test_augmentation_is_reproducible_and_ignores_global_rng(tmp_path):
    write_scene(tmp_path)
    first, second = _scene_dataset(tmp_path, seed=7), _scene_dataset(tmp_path, seed=7)
    for epoch in (0, 3):
        first.set_epoch(epoch)
        second.set_epoch(epoch)
        for index in range(len(first)):
            torch.manual_seed(index)
            random.seed(index)
            np.random.seed(index)
            _assert_items_equal(first[index], second[index])


def test_augmentation_varies_with_index_epoch_and_seed(tmp_path):
    write_scene(tmp_path)
    dataset = _scene_dataset(tmp_path, seed=1)
    draws = [(dataset.set_epoch(e), dataset.augmentation(i))[1] for e in range(4) for i in range(len(dataset))]
    assert {d.flip for d in draws} == {True, False}
    assert {d.jitters is None for d in draws} == {True, False}
    assert {len(d.jitters) for d in draws if d.jitters is not None} == {3}
    other = _scene_dataset(tmp_path, seed=2)
    other_draws = [(other.set_epoch(e), other.augmentation(i))[1] for e in range(4) for i in range(len(other))]
    assert draws != other_draws


def test_evaluation_items_are_never_augmented(tmp_path):
    write_scene(tmp_path)
    dataset = _scene_dataset(tmp_path, is_train=False)
    for epoch in range(5):
        dataset.set_epoch(epoch)
        item = dataset[0]
        assert torch.equal(item[("color", 0, 0)], item[("color_aug", 0, 0)])


def test_jitter_is_drawn_per_frame(tmp_path):
    """As the original: one decision to jitter per item, then new parameters for every frame."""
    write_scene(tmp_path, identical_frames=True)
    dataset = _scene_dataset(tmp_path)
    _epoch_where(dataset, 0, jitter=True)
    jitters = dataset.augmentation(0).jitters
    assert len(jitters) == len(dataset.frame_ids) == 3
    for field in ("brightness", "contrast", "saturation", "hue"):
        assert len({getattr(j, field) for j in jitters}) == 3, field

    item = dataset[0]
    augmented = [item[("color_aug", f, 0)] for f in dataset.frame_ids]
    for f, jitter, color in zip(dataset.frame_ids, jitters, augmented):
        assert torch.equal(item[("color", f, 0)], item[("color", 0, 0)])  # the scene's frames are identical
        assert torch.equal(color, jitter(item[("color", f, 0)]))
        assert not torch.allclose(color, item[("color", f, 0)], atol=1e-3), "jitter changed nothing"
    for a in range(3):
        for b in range(a + 1, 3):
            assert not torch.allclose(augmented[a], augmented[b], atol=1e-3), (a, b)


def test_same_seed_gives_the_same_per_frame_draws():
    draws = [sample_augmentation(item_generator(4, 2, index)) for index in range(40)]
    again = [sample_augmentation(item_generator(4, 2, index)) for index in range(40)]
    assert draws == again
    jittered = [d.jitters for d in draws if d.jitters is not None]
    assert jittered and all(len(j) == 3 and len(set(j)) == 3 for j in jittered)
    assert [d.jitters for d in draws] != [sample_augmentation(item_generator(5, 2, i)).jitters for i in range(40)]
    # The frame count only adds draws at the end: the first frames keep theirs.
    two = [sample_augmentation(item_generator(4, 2, index), frames=2) for index in range(40)]
    assert [d.flip for d in two] == [d.flip for d in draws]
    assert [d.jitters for d in two] == [None if d.jitters is None else d.jitters[:2] for d in draws]


def test_jitter_matches_torchvision_per_frame():
    jitter = ColorJitter(order=(3, 0, 2, 1), brightness=1.15, contrast=0.85, saturation=1.1, hue=-0.07)
    frames = torch.rand(3, 3, 20, 30, generator=torch.Generator().manual_seed(0))
    frames[1] *= 0.5  # a different mean per frame: contrast must use each frame's own
    got = jitter(frames)
    for frame, out in zip(frames, got):
        want = TF.adjust_hue(frame, jitter.hue)
        want = TF.adjust_brightness(want, jitter.brightness)
        want = TF.adjust_saturation(want, jitter.saturation)
        want = TF.adjust_contrast(want, jitter.contrast)
        torch.testing.assert_close(out, want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("hue", [-0.1, -0.03, 0.0, 0.05, 0.1])
def test_shift_hue_matches_torchvision(hue):
    image = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    image[0, :, :4] = 0.4  # grey pixels: no hue
    image[1, 1, :4] = image[1, 0, :4]  # ties between channels
    torch.testing.assert_close(shift_hue(image, hue), TF.adjust_hue(image, hue), atol=1e-5, rtol=0)


def test_flip_is_consistent_across_frames_depth_and_masks(tmp_path):
    camera = write_scene(tmp_path, frames=(0, 1, 2))
    semantic = np.arange(96 * 128, dtype=np.uint32).reshape(96, 128) % 251
    motion = np.zeros((96, 128), np.uint8)
    motion[10:20, 5:30] = 1
    np.savez(camera / "mask" / "000001.npz", semantic=semantic.astype(np.uint8), motion=motion)
    dataset = _scene_dataset(tmp_path, load_depth=True, load_mask=True)
    plain = _scene_dataset(tmp_path, is_train=False, load_depth=True, load_mask=True)[0]
    _epoch_where(dataset, 0, flip=True, jitter=False)
    flipped = dataset[0]

    for f in (0, -1, 1):
        assert torch.equal(flipped[("color", f, 0)], plain[("color", f, 0)].flip(-1))
        assert torch.equal(flipped[("color_aug", f, 0)], flipped[("color", f, 0)])
    assert torch.equal(flipped["sem_mask"], plain["sem_mask"].flip(-1))
    assert torch.equal(flipped["mot_mask"], plain["mot_mask"].flip(-1))
    for key in [k for k in plain if isinstance(k, tuple) and k[0] in ("K", "inv_K")] + ["gt_dim", "depth_valid"]:
        assert torch.equal(torch.as_tensor(flipped[key]), torch.as_tensor(plain[key])), key

    count, width = plain["depth_valid"], int(plain["gt_dim"][1])
    rows, cols, depth = plain["depth_gt"][:count].T
    f_rows, f_cols, f_depth = flipped["depth_gt"][:count].T
    assert torch.equal(f_rows, rows) and torch.equal(f_depth, depth)
    inside = cols > 0
    torch.testing.assert_close(f_cols[inside], width - cols[inside])
    assert (f_cols < width).all() and (f_cols > width - 1).any()  # column 0 stays inside the image


def test_flip_mirrors_kitti_pixel_columns(tiny_kitti):
    line = "2011_09_26/2011_09_26_drive_0001_sync 1 l"
    data = tiny_kitti
    dataset = build_dataset("kitti", data, [line], frame_ids=[0], is_train=True, load_depth=True)
    plain = build_dataset("kitti", data, [line], frame_ids=[0], load_depth=True)[0]
    _epoch_where(dataset, 0, flip=True)
    flipped = dataset[0]
    count, width = plain["depth_valid"], int(plain["gt_dim"][1])
    assert torch.equal(flipped["depth_gt"][:count, 1], width - 1 - plain["depth_gt"][:count, 1])
    assert torch.equal(flipped[("color", 0, 0)], plain[("color", 0, 0)].flip(-1))


def test_worker_processes_draw_the_same_augmentation(tmp_path):
    write_scene(tmp_path)
    dataset = _scene_dataset(tmp_path, seed=3)
    dataset.set_epoch(5)
    expected = [dataset[i] for i in range(len(dataset))]
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, shuffle=False)
    for batch_index, batch in enumerate(loader):
        for row in range(2):
            want = expected[batch_index * 2 + row]
            for f in (0, -1, 1):
                assert torch.equal(batch[("color_aug", f, 0)][row], want[("color_aug", f, 0)])
