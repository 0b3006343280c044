"""The generator's files: layout, formats, determinism, splits, reruns and option checks."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import SHARED

from dynamo_core.errors import ConfigError, DataError
from dynamo_core.synthetic import build_scene, generate_dataset
from dynamo_core.synthetic import scene as sc
from synthetic_files import SMALL, masks, sequence_folders, small_dataset  # noqa: F401 (fixture)

TINY = dict(sequences=2, frames=4, height=64, width=192, seed=3, test_sequences=1)
WAYMO_FRONT = SHARED / "data" / "tiny_waymo" / "val" / "segment-1024360143612057520_3580_000_3600_000" / "FRONT"


def all_files(root) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_same_seed_gives_byte_identical_files_with_any_number_of_workers(tmp_path):
    generate_dataset(tmp_path / "a", workers=1, **TINY)
    generate_dataset(tmp_path / "b", workers=2, **TINY)
    a, b = all_files(tmp_path / "a"), all_files(tmp_path / "b")
    assert len(a) > 40
    assert a.keys() == b.keys()
    assert [name for name in a if a[name] != b[name]] == []

    generate_dataset(tmp_path / "c", workers=1, **{**TINY, "seed": 4})
    c = all_files(tmp_path / "c")
    image = "train/seq-0000/FRONT/rgb/original/000000.jpg"
    assert c[image] != a[image]


@pytest.mark.sample_data
def test_layout_and_formats_follow_the_waymo_files(small_dataset):
    waymo_cam = json.loads((WAYMO_FRONT / "rgb" / "cam.json").read_text())
    waymo_depth = np.load(WAYMO_FRONT / "depth" / "000001.npy")
    height, width = SMALL["height"], SMALL["width"]

    fronts = sequence_folders(small_dataset)
    assert [f.parent.relative_to(small_dataset).as_posix() for f in fronts] == [
        "test/seq-0002",
        "train/seq-0000",
        "train/seq-0001",
    ]
    for front in fronts:
        cam = json.loads((front / "rgb" / "cam.json").read_text())
        assert np.shape(cam["intrinsic_mat"]) == np.shape(waymo_cam["intrinsic_mat"]) == (3, 3)
        assert cam["dim"] == [height, width]
        K = np.array(cam["intrinsic_mat"])
        assert 0.0 < K[0, 2] < 1.0 and 0.0 < K[1, 2] < 1.0  # normalised by width and height
        assert K[2].tolist() == [0.0, 0.0, 1.0]

        odometry = np.loadtxt(front / "odometry.txt", ndmin=2)
        assert odometry.shape == (SMALL["frames"], 16)
        for frame in range(SMALL["frames"]):
            name = f"{frame:06d}"
            for kind, size in (("original", (width, height)), ("downsample", (width // 2, height // 2))):
                from PIL import Image

                with Image.open(front / "rgb" / kind / f"{name}.jpg") as im:
                    assert im.format == "JPEG" and im.mode == "RGB" and im.size == size
            points = np.load(front / "depth" / f"{name}.npy")
            assert points.ndim == waymo_depth.ndim == 2 and points.shape[1] == waymo_depth.shape[1] == 3
            # Waymo order: [column, row, depth]; the first column spans the width.
            assert points[:, 0].max() > height
            dense = np.load(front / "depth_dense" / f"{name}.npy")
            assert dense.dtype == np.float16 and dense.shape == (height, width)
            flow = np.load(front / "scene_flow" / f"{name}.npy")
            assert flow.dtype == np.float16 and flow.shape == (height, width, 3)
            labels = masks(front, frame)
            assert sorted(labels) == ["motion", "semantic"]
            for array in labels.values():
                assert array.dtype == np.uint8 and array.shape == (height, width)
            assert set(np.unique(labels["semantic"])) <= {2, 19, 20, 25, 28}
            assert set(np.unique(labels["motion"])) <= {0, 1, 2}
            # Sky has no depth, everything else has.
            sky = labels["semantic"] == 25
            assert np.all(dense[sky] == 0) and np.all(dense[~sky] > 0)
            # Moving and static objects are labelled consistently in both masks.
            np.testing.assert_array_equal(labels["motion"] == 1, labels["semantic"] == 2)
            np.testing.assert_array_equal(labels["motion"] == 2, labels["semantic"] == 28)
    assert not list(small_dataset.rglob("*.tmp")), "temporary files left behind"


def test_split_files_list_frames_with_both_neighbours(small_dataset):
    splits = small_dataset / "splits"
    inner = range(1, SMALL["frames"] - 1)
    train = [f"train/seq-{i:04d} {k}" for i in (0, 1) for k in inner]
    test = [f"test/seq-0002 {k}" for k in inner]
    assert (splits / "train_files.txt").read_text().splitlines() == train
    assert (splits / "test_files.txt").read_text().splitlines() == test
    assert (splits / "test_mask_files.txt").read_text().splitlines() == test
    for line in train + test:
        folder, frame = line.split()
        for neighbour in (int(frame) - 1, int(frame) + 1):
            assert (small_dataset / folder / "FRONT" / "rgb" / "original" / f"{neighbour:06d}.jpg").is_file()


def test_the_dataset_loader_reads_the_files(small_dataset):
    from dynamo_core.data import build_dataset

    lines = (small_dataset / "splits" / "test_files.txt").read_text().splitlines()
    dataset = build_dataset(
        "synthetic",
        small_dataset,
        lines,
        height=SMALL["height"],
        width=SMALL["width"],
        load_depth=True,
        load_mask=True,
        img_type="original",
    )
    item = dataset[0]
    assert tuple(item[("color", 0, 0)].shape) == (3, SMALL["height"], SMALL["width"])
    assert item["gt_dim"].tolist() == [SMALL["height"], SMALL["width"]]
    count = int(item["depth_valid"])
    rows = item["depth_gt"][:count].numpy()
    # The loader gives [row, col, depth]: rows stay within the height.
    assert count > 1000 and rows[:, 0].max() <= SMALL["height"] - 1 < rows[:, 1].max()
    assert tuple(item["mot_mask"].shape) == (SMALL["height"], SMALL["width"])
    K = item[("K", 0)].numpy()
    assert K[0, 0] == pytest.approx(0.58 * SMALL["width"], rel=1e-6)


def test_a_rerun_skips_complete_sequences_and_force_renders_again(tmp_path):
    out = tmp_path / "data"
    first = generate_dataset(out, **TINY)
    assert (first.rendered_sequences, first.skipped_sequences) == (2, 0)
    image = out / "train" / "seq-0000" / "FRONT" / "rgb" / "original" / "000001.jpg"
    stamp = image.stat().st_mtime_ns
    seen = []
    again = generate_dataset(out, progress=lambda done, total: seen.append((done, total)), **TINY)
    assert (again.rendered_sequences, again.skipped_sequences) == (0, 2)
    assert image.stat().st_mtime_ns == stamp
    assert seen[-1] == (8, 8)

    # A sequence left incomplete (no marker) is rendered again, the complete one is skipped.
    (out / "test" / "seq-0001" / "sequence.json").unlink()
    resumed = generate_dataset(out, **TINY)
    assert (resumed.rendered_sequences, resumed.skipped_sequences) == (1, 1)

    forced = generate_dataset(out, force=True, **TINY)
    assert (forced.rendered_sequences, forced.skipped_sequences) == (2, 0)
    assert image.stat().st_mtime_ns != stamp


def test_a_folder_with_other_settings_is_not_mixed_into(tmp_path):
    out = tmp_path / "data"
    generate_dataset(out, **TINY)
    with pytest.raises(ConfigError, match="other settings: frames 4 \\(now 5\\).*--force"):
        generate_dataset(out, **{**TINY, "frames": 5})
    # --force replaces it, leaving no frames of the old run behind.
    generate_dataset(out, force=True, **{**TINY, "frames": 5, "sequences": 1, "test_sequences": 0})
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("*/seq-*")) == ["train/seq-0000"]
    assert len(list((out / "train" / "seq-0000" / "FRONT" / "depth").glob("*.npy"))) == 5


def test_a_foreign_manifest_is_refused(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "synthetic.json").write_text("{not json")
    with pytest.raises(DataError, match="synthetic.json"):
        generate_dataset(out, **TINY)


@pytest.mark.parametrize(
    "change, option",
    [
        ({"height": 100}, "--height"),
        ({"width": 16}, "--width"),
        ({"frames": 2}, "--frames"),
        ({"sequences": 0}, "--sequences"),
        ({"test_sequences": 3}, "--test-sequences"),
        ({"seed": -1}, "--seed"),
    ],
)
def test_bad_settings_name_the_option(tmp_path, change, option):
    with pytest.raises(ConfigError, match=option):
        generate_dataset(tmp_path / "data", **{**TINY, **change})
    assert not (tmp_path / "data").exists()


def test_an_out_path_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        generate_dataset(target, **TINY)


def test_an_unwritable_folder_gives_a_data_error(tmp_path):
    if os.geteuid() == 0:
        # root ignores permissions; a path under a file cannot be created either.
        blocker = tmp_path / "blocker"
        blocker.write_text("x")
        out = blocker / "data"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        out = locked / "data"
    with pytest.raises(DataError, match="cannot write"):
        generate_dataset(out, **TINY)


@pytest.mark.parametrize("seed", range(40))
def test_scenes_hold_the_cases_the_method_is_about(seed):
    frames = 50
    scene = build_scene(np.random.default_rng([seed, 0]), frames)
    ego = scene.ego
    assert 1.5 <= ego.height <= 1.7
    assert 0.95 <= ego.speed <= 1.05
    boxes = scene.boxes
    vehicles = boxes.kind == sc.VEHICLE
    assert 2 <= vehicles.sum() <= 6
    size = boxes.upper[vehicles] - boxes.lower[vehicles]
    assert np.all(np.abs(size - [4.2, 1.8, 1.5]) < 0.6)
    speeds = boxes.velocity[vehicles, 0]
    # One drives at nearly the camera's own speed, one comes the other way.
    assert np.any(np.abs(speeds - ego.speed) < 0.05 * ego.speed)
    assert np.any(speeds < 0)
    assert np.all(np.abs(speeds) > 0.1)
    assert np.all(boxes.velocity[~vehicles] == 0)
    # No vehicle ever comes within a car length of the camera in its own lane.
    camera_x = ego.positions[:, 0]
    for lower, upper, velocity in zip(boxes.lower[vehicles], boxes.upper[vehicles], boxes.velocity[vehicles]):
        rear = lower[0] + velocity[0] * np.arange(frames + 1)
        if lower[1] < 0.9 and upper[1] > -0.9:
            assert np.all(rear - camera_x > 5.0)
