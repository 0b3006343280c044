"""Untrusted dataset files: pickles that run code, missing and corrupt files."""

from __future__ import annotations

import os
import pickle
import shlex

import numpy as np
import pytest

from conftest import SHARED
from data_scenes import write_scene
from dynamo_core.data import build_dataset, read_safe_pickle
from dynamo_core.errors import DataError

KITTI_LINE = "2011_09_26/2011_09_26_drive_0001_sync 1 l"


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def _waymo_with_masks(tmp_path):
    camera = write_scene(tmp_path, full_size=(1280, 1920))
    np.savez(camera / "mask" / "000001.npz", semantic=np.zeros((1280, 1920, 1), np.uint8))
    return camera


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    camera = _waymo_with_masks(tmp_path)
    evil = camera / "mask" / "000001.pickle"
    evil.write_bytes(pickle.dumps([{"mask": (), "box_label": None, "speed": _Exploit(marker)}]))

    with pytest.raises(DataError, match="refused") as err:
        read_safe_pickle(evil)
    message = str(err.value)
    assert str(evil) in message and ".system" in message

    dataset = build_dataset("waymo", tmp_path, ["seq-a 1"], frame_ids=[0], load_mask=True)
    with pytest.raises(DataError, match="refused"):
        dataset[0]
    assert not marker.exists()


def test_pickle_of_other_classes_is_refused(tmp_path):
    path = tmp_path / "labels.pickle"
    path.write_bytes(pickle.dumps([{"when": __import__("datetime").date(2020, 1, 1)}]))
    with pytest.raises(DataError, match="datetime"):
        read_safe_pickle(path)


def test_safe_pickle_reads_builtins_and_numpy_arrays(tmp_path):
    contour = np.arange(8, dtype=np.int32).reshape(4, 1, 2)
    labels = [{"mask": (contour,), "box_label": np.int64(3), "speed": [1.5, 0.0, None], "tags": {"a", "b"}}]
    for protocol in (2, 4, 5):
        path = tmp_path / f"labels{protocol}.pickle"
        path.write_bytes(pickle.dumps(labels, protocol=protocol))
        loaded = read_safe_pickle(path)
        assert np.array_equal(loaded[0]["mask"][0], contour)
        assert loaded[0]["box_label"] == 3 and loaded[0]["speed"] == [1.5, 0.0, None]
        assert loaded[0]["tags"] == {"a", "b"}


def test_corrupt_pickle_names_the_file(tmp_path):
    path = tmp_path / "broken.pickle"
    path.write_bytes(pickle.dumps([1, 2, 3])[:-4])
    with pytest.raises(DataError, match="broken.pickle"):
        read_safe_pickle(path)


def test_missing_frame_names_the_file(tiny_kitti):
    # The tiny KITTI drive has frames 0..2 only; frame 3 is asked for by the +1 neighbour of 2.
    dataset = build_dataset("kitti", tiny_kitti, [KITTI_LINE.replace(" 1 ", " 2 ")])
    with pytest.raises(DataError, match=r"0000000003\.jpg is missing"):
        dataset[0]


def test_corrupt_jpeg_names_the_file(tmp_path):
    camera = write_scene(tmp_path)
    bad = camera / "rgb" / "downsample" / "000001.jpg"
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 3])  # truncated
    dataset = build_dataset("waymo", tmp_path, ["seq-a 1"], height=48, width=64)
    with pytest.raises(DataError, match="000001.jpg is corrupt"):
        dataset[0]
    bad.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="000001.jpg is corrupt"):
        dataset[0]


def test_corrupt_depth_file_names_the_file(tmp_path):
    camera = write_scene(tmp_path)
    (camera / "depth" / "000001.npy").write_bytes(b"\x93NUMPY garbage")
    dataset = build_dataset("waymo", tmp_path, ["seq-a 1"], height=48, width=64, load_depth=True)
    with pytest.raises(DataError, match="000001.npy is corrupt"):
        dataset[0]


def test_depth_file_of_wrong_shape_or_pickled_objects_is_refused(tmp_path):
    camera = write_scene(tmp_path)
    dataset = build_dataset("waymo", tmp_path, ["seq-a 1"], height=48, width=64, load_depth=True)
    np.save(camera / "depth" / "000001.npy", np.zeros((5, 2)))
    with pytest.raises(DataError, match=r"expected \(N, 3\)"):
        dataset[0]
    np.save(camera / "depth" / "000001.npy", np.array([[1, 2, {}]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="000001.npy is corrupt"):
        dataset[0]


def test_npz_object_arrays_are_not_unpickled(tmp_path):
    camera = write_scene(tmp_path, full_size=(900, 1600), points=np.array([[10.0, 20.0, 5.0]]))
    np.savez(camera / "mask" / "000001.npz", motion_label=np.array([{"x": 1}], dtype=object))
    (camera / "rgb" / "ts.json").write_text("[100, 100, 100]")
    dataset = build_dataset("nuscenes", tmp_path, ["seq-a 1"], frame_ids=[0], load_mask=True)
    with pytest.raises(DataError, match="000001.npz is corrupt"):
        dataset[0]


def test_missing_mask_names_the_file(tmp_path):
    write_scene(tmp_path, full_size=(1280, 1920))
    dataset = build_dataset("waymo", tmp_path, ["seq-a 1"], frame_ids=[0], load_mask=True)
    with pytest.raises(DataError, match=r"000001\.npz is missing"):
        dataset[0]


def test_too_many_depth_points_is_an_error(tmp_path):
    write_scene(tmp_path, points=np.ones((7, 3)))
    dataset = build_dataset("waymo", tmp_path, ["seq-a 1"], frame_ids=[0], load_depth=True, max_depth_points=5)
    with pytest.raises(DataError, match="7 points"):
        dataset[0]


def test_missing_camera_file_fails_at_construction(tmp_path):
    camera = write_scene(tmp_path)
    (camera / "rgb" / "cam.json").unlink()
    with pytest.raises(DataError, match="cam.json is missing"):
        build_dataset("waymo", tmp_path, ["seq-a 1"])


def test_missing_data_folder_and_bad_split_line(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build_dataset("waymo", tmp_path / "nowhere", ["seq-a 1"])
    write_scene(tmp_path)
    with pytest.raises(DataError, match="line 2"):
        build_dataset("waymo", tmp_path, ["seq-a 1", "seq-a one"])
