"""Dataset items against the items the released loaders produced for the tiny sample datasets."""

from __future__ import annotations

import pytest
import torch

from functools import cache

from conftest import REFERENCE, SHARED, load_fixture, parse_key as parse_tuple_key
from dynamo_core.data import build_dataset

pytestmark = pytest.mark.sample_data

LOADERS_PATH = REFERENCE / "loaders.pt"
# The entries of loaders.pt (see its README); listed here too so that the tests are collected,
# and reported as skipped, where the sample data are absent.
ENTRIES = ("kitti", "kitti_right", "nuscenes", "waymo")


@cache
def loaders() -> dict:
    return load_fixture(LOADERS_PATH)


def parse_key(key: str):
    """'color/-1/0' -> ('color', -1, 0); 'gt_dim' -> 'gt_dim'."""
    return parse_tuple_key(key) if "/" in key else key


def _dataset_name(entry_name: str) -> str:
    # Entries are named after their dataset, with a suffix for variants (kitti_right).
    return entry_name.split("_")[0]


def _build(entry_name: str, entry: dict):
    expected = entry["item"]
    return build_dataset(
        _dataset_name(entry_name),
        SHARED / "data" / entry["data_path"],
        [entry["line"]],
        height=int(entry["height"]),
        width=int(entry["width"]),
        frame_ids=[int(f) for f in entry["frame_ids"]],
        num_scales=sum(1 for key in expected if key.startswith("K/")),
        load_depth="depth_gt" in expected,
        load_mask="mot_mask" in expected,
    )


def test_parity_loaders_fixture_has_the_known_entries():
    assert sorted(loaders()) == sorted(ENTRIES)


@pytest.mark.parametrize("entry_name", ENTRIES)
def test_parity_loader_item(entry_name):
    entry = loaders()[entry_name]
    expected = entry["item"]
    item = _build(entry_name, entry)[0]

    for f in entry["frame_ids"]:
        assert ("color", f, 0) in item and ("color_aug", f, 0) in item
    assert not any(key[0] == "color" and key[2] != 0 for key in item if isinstance(key, tuple)), "only level 0"

    for key, want in expected.items():
        got = item[parse_key(key)]
        if key.startswith("color/"):
            assert got.dtype == torch.float32 and got.shape == want.shape, key
            diff = (got - want.float() / 255).abs()
            assert diff.max() <= 2 / 255 + 1e-6, key
            assert diff.mean() <= 0.25 / 255, key
            # Without training augmentation the augmented copy is the image itself.
            assert torch.equal(item[("color_aug", *parse_key(key)[1:])], got)
        elif key == "depth_gt":
            count = want.shape[0]
            assert got.dtype == torch.float32 and got.shape[1] == 3
            assert torch.equal(got[:count], want)
            assert not got[count:].any(), "padding must be zeros"
        elif torch.is_tensor(want):
            assert got.dtype == want.dtype and torch.equal(got, want), key
        else:
            assert got == want, key


def test_parity_items_batch_together():
    """Items of one dataset collate into a batch: depth is padded to a fixed row count."""
    entry = loaders()["kitti"]
    right = loaders()["kitti_right"]
    dataset = build_dataset(
        "kitti",
        SHARED / "data" / entry["data_path"],
        [entry["line"], right["line"]],
        height=int(entry["height"]),
        width=int(entry["width"]),
        frame_ids=[int(f) for f in entry["frame_ids"]],
        load_depth=True,
    )
    batch = torch.utils.data.default_collate([dataset[0], dataset[1]])
    assert batch["depth_gt"].shape[:2] == (2, dataset.max_depth_points)
    assert batch["depth_valid"].tolist() == [entry["item"]["depth_valid"], right["item"]["depth_valid"]]
    assert batch[("K", 0)].shape == (2, 4, 4) and batch[("K", 0)].dtype == torch.float32
    assert batch[("color", 0, 0)].shape == (2, 3, int(entry["height"]), int(entry["width"]))
