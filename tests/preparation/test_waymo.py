"""`dynamo prepare waymo`: TFRecord framing and CRC-32C, the protobuf decoder, and the outputs of a
segment built from the released `tiny_waymo` files, compared with those files."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from dynamo_cli.main import app
from dynamo_core.data.files import read_safe_pickle
from dynamo_core.data.waymo import motion_label_mask
from dynamo_core.preparation import tfrecord
from dynamo_core.preparation.protobuf import DecodeError, Message, decode_varints
from raw_waymo import (
    FRAMES, RELEASED, SEGMENT, expected_depth, f_bytes, f_double, f_doubles, f_int, make_scene, tree, varint,
    write_segment,
)

pytestmark = pytest.mark.sample_data  # built from, or compared with, the released sample frames

runner = CliRunner()
OUT_SEGMENT = Path("val") / SEGMENT / "FRONT"


@pytest.fixture(scope="module")
def scene():
    return make_scene()


@pytest.fixture(scope="module")
def prepared(scene, tmp_path_factory) -> tuple[Path, Path]:
    """(raw, out) after one `dynamo prepare waymo` run over the built segment."""
    root = tmp_path_factory.mktemp("waymo")
    raw, out = root / "raw", root / "out"
    write_segment(raw, scene)
    result = runner.invoke(app, ["prepare", "waymo", str(raw), str(out), "--json"])
    assert result.exit_code == 0, result.output
    return raw, out


# --------------------------------------------------------------------------- framing and decoding


def test_crc32c_matches_the_standard_check_values():
    assert tfrecord.crc32c(b"123456789") == 0xE3069283
    assert tfrecord._crc32c_fallback(b"123456789") == 0xE3069283
    assert tfrecord._crc32c_fallback(bytes(32)) == 0x8A9136AA
    rng = np.random.default_rng(0)
    for size in (0, 1, 4095, 4096, 70_001, 1_300_000):
        data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        if size:
            assert tfrecord._update_numpy(0xFFFFFFFF, data) == tfrecord._update_python(0xFFFFFFFF, data)
        assert tfrecord._crc32c_fallback(data) == tfrecord.crc32c(data)


def test_masked_crc_rotates_and_adds_the_constant():
    crc = tfrecord.crc32c(b"abc")
    assert tfrecord.masked_crc(b"abc") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_records_round_trip_and_count(tmp_path):
    path = tmp_path / "x.tfrecord"
    payloads = [b"", b"one", os.urandom(10_000)]
    path.write_bytes(b"".join(tfrecord.encode_record(p) for p in payloads))
    records = list(tfrecord.read_records(path))
    assert [r.data for r in records] == payloads
    assert [r.offset for r in records] == [0, 16, 35]
    assert tfrecord.count_records(path) == 3


@pytest.mark.parametrize("where, expected", [(20, "corrupt length"), (35 + 12 + 500, "corrupt data"), (-3, "truncated")])
def test_a_corrupt_record_names_the_file_and_byte_offset(tmp_path, where, expected):
    path = tmp_path / "seg.tfrecord"
    data = bytearray(b"".join(tfrecord.encode_record(p) for p in [b"", b"one", os.urandom(1000)]))
    if where < 0:
        data = data[:where]
    else:
        data[where] ^= 0x40
    path.write_bytes(bytes(data))
    record_offset = 16 if where == 20 else 35
    with pytest.raises(tfrecord.CorruptRecord, match=f"seg.tfrecord: the record at byte {record_offset} .*{expected}"):
        list(tfrecord.read_records(path))


def test_protobuf_decoder_reads_packed_and_unpacked_fields():
    inner = f_int(1, 7) + f_doubles(2, [1.5, -2.0], packed=False) + f_doubles(2, [3.25])
    data = f_int(1, -5) + f_bytes(2, inner) + f_bytes(2, f_int(1, 8)) + f_bytes(3, b"\x00\xff") + f_double(4, 0.5)
    message = Message(data)
    assert message.int(1) == -5
    subs = message.messages(2)
    assert [s.int(1) for s in subs] == [7, 8]
    assert subs[0].doubles(2).tolist() == [1.5, -2.0, 3.25]
    assert bytes(message.bytes(3)) == b"\x00\xff" and message.double(4) == 0.5
    assert message.int(9, default=3) == 3 and message.message(9) is None
    values = [0, 1, 127, 128, 300, 2**31 - 1, -1, -(2**31)]
    assert decode_varints(b"".join(varint(v) for v in values)).tolist() == values


def test_protobuf_decoder_rejects_truncated_messages():
    with pytest.raises(DecodeError):
        Message(f_bytes(2, b"abcdef")[:-2])
    with pytest.raises(DecodeError):
        Message(b"\x0b")  # wire type 3 (group)


# --------------------------------------------------------------------------- outputs


def test_camera_file_and_odometry_equal_the_released_ones(prepared):
    _, out = prepared
    folder = out / OUT_SEGMENT
    assert (folder / "rgb" / "cam.json").read_bytes() == (RELEASED / "rgb" / "cam.json").read_bytes()
    released = (RELEASED / "odometry.txt").read_text().splitlines()[:FRAMES]
    assert (folder / "odometry.txt").read_text().splitlines() == released


def test_images_are_undistorted_at_full_and_downsampled_size(prepared, scene):
    _, out = prepared
    folder = out / OUT_SEGMENT / "rgb"
    for index in range(FRAMES):
        original = cv2.imread(str(folder / "original" / f"{index:06d}.jpg"))
        downsample = cv2.imread(str(folder / "downsample" / f"{index:06d}.jpg"))
        assert original.shape == (1280, 1920, 3) and downsample.shape == (320, 480, 3)
    source = cv2.imdecode(np.frombuffer(scene.jpegs[0], np.uint8), cv2.IMREAD_COLOR)
    k = np.array(scene.calibration["intrinsic"])
    expected = cv2.undistort(source, np.array([[k[0], 0, k[2]], [0, k[1], k[3]], [0, 0, 1]]), k[4:9])
    written = cv2.imread(str(folder / "original" / "000000.jpg")).astype(float)
    assert np.abs(written - expected).mean() < 2.0  # only the JPEG re-encoding differs
    assert np.abs(written - source).mean() > np.abs(written - expected).mean()


def test_depth_points_equal_the_known_points(prepared, scene):
    _, out = prepared
    expected = expected_depth(scene)
    assert len(expected) > 20
    for index in range(FRAMES):
        depth = np.load(out / OUT_SEGMENT / "depth" / f"{index:06d}.npy")
        assert depth.dtype == np.float64 and depth.shape == expected.shape
        np.testing.assert_allclose(depth, expected, atol=1e-3, rtol=0)


def test_mask_equals_the_released_mask_and_only_labelled_frames_have_one(prepared):
    _, out = prepared
    masks = out / OUT_SEGMENT / "mask"
    assert sorted(p.name for p in masks.iterdir()) == ["000001.json", "000001.npz"]
    written, released = np.load(masks / "000001.npz"), np.load(RELEASED / "mask" / "000001.npz")
    assert written.files == released.files == ["semantic", "instance"]
    for key in released.files:
        assert written[key].dtype == released[key].dtype == np.uint8
        assert np.array_equal(written[key], released[key])


def test_annotations_have_the_released_contours_and_classes(prepared, scene):
    _, out = prepared
    annotations = json.loads((out / OUT_SEGMENT / "mask" / "000001.json").read_text())
    released = read_safe_pickle(RELEASED / "mask" / "000001.pickle")
    assert len(annotations) == len(released)
    for ours, theirs in zip(annotations, released):
        assert list(ours) == list(theirs)
        assert ours["mask_label"] == theirs["mask_label"]
        assert len(ours["mask"]) == len(theirs["mask"])
        for a, b in zip(ours["mask"], theirs["mask"]):
            assert np.array_equal(np.array(a), np.asarray(b).reshape(-1, 2))
    matched = [a for a in annotations if a["box_label"] is not None]
    assert len(matched) == 1  # instance 4 of class 3: three of its four lidar points are in the second box
    (entry,) = matched
    box = scene.boxes[1]
    assert entry["mask_label"] == 3 and entry["match"] == 0.75 and entry["box_label"] == 1
    assert entry["speed"] == list(box["speed"]) and entry["accel"] == list(box["accel"])
    assert entry["dim"] == [box["length"], box["width"], box["height"]] and entry["heading"] == box["heading"]
    np.testing.assert_allclose(entry["center"], box["center"])
    unmatched = next(a for a in annotations if a["box_label"] is None)
    assert unmatched["speed"] == [None] * 3 and unmatched["match"] == 0


def test_the_loader_reads_the_json_annotations(prepared):
    _, out = prepared
    path = out / OUT_SEGMENT / "mask" / "000001.json"
    objects = json.loads(path.read_text())
    motion = motion_label_mask(objects, (1280, 1920), path)
    assert set(np.unique(motion)) == {0, 1, 3}  # the matched car moves at 3.5 m/s; the others have no box


def test_json_wins_over_a_released_pickle_in_the_loader(prepared, tmp_path):
    from dynamo_core.data import build_dataset

    _, out = prepared
    dataset = build_dataset("waymo", out, [f"val/{SEGMENT} 1"], load_depth=True)
    npz, annotations = dataset.mask_paths(f"val/{SEGMENT}", 1, "l")
    assert annotations.suffix == ".json"
    semantic, motion = dataset.masks(f"val/{SEGMENT}", 1, "l")
    assert semantic.shape == motion.shape == (1280, 1920)
    released = build_dataset("waymo", RELEASED.parents[2], [f"val/{SEGMENT} 1"], load_depth=True)
    assert released.mask_paths(f"val/{SEGMENT}", 1, "l")[1].suffix == ".pickle"
    assert np.array_equal(released.masks(f"val/{SEGMENT}", 1, "l")[0], semantic)


# --------------------------------------------------------------------------- running


def test_a_corrupt_segment_fails_alone_naming_segment_and_offset(scene, tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    good = write_segment(raw, scene)
    bad = write_segment(raw, scene, name="segment-0000000000000000000_0_000_20_000")
    data = bytearray(bad.read_bytes())
    first = struct.unpack("<Q", data[:8])[0] + 16
    data[first + 12 + 5000] ^= 0x01  # inside the second record's data
    bad.write_bytes(bytes(data))
    result = runner.invoke(app, ["prepare", "waymo", str(raw), str(out)])
    assert result.exit_code == 1
    assert f"the record at byte {first}" in result.output and "segment-0000000000000000000_0_000_20_000" in result.output
    assert "1 of 2 segments failed" in result.output.replace("\n", " ")
    assert (out / "val" / good.name.split("_with")[0] / "FRONT" / ".prepared").is_file()
    assert not (out / "val" / "segment-0000000000000000000_0_000_20_000" / "FRONT" / ".prepared").exists()


def test_an_interrupted_run_rerun_gives_identical_files(prepared, tmp_path):
    raw, out = prepared
    reference = tree(out)
    copy = tmp_path / "out"
    for name, data in reference.items():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(data)
    folder = copy / OUT_SEGMENT
    (folder / ".prepared").unlink()  # interrupted before the marker ...
    (folder / "depth" / "000002.npy").unlink()  # ... and before the last depth file
    (folder / "rgb" / "original" / ".000002.jpg.abcd.partial").write_bytes(b"half")  # with a stray temporary file
    (folder / "odometry.txt").write_text("stale\n")
    result = runner.invoke(app, ["prepare", "waymo", str(raw), str(copy), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["segments"][0]["status"] == "prepared"
    assert tree(copy) == reference
    again = runner.invoke(app, ["prepare", "waymo", str(raw), str(copy), "--json"])
    assert json.loads(again.stdout)["segments"][0]["status"] == "skipped"


@pytest.mark.slow
def test_two_workers_write_the_same_files_as_one(scene, tmp_path, prepared):
    raw = tmp_path / "raw"
    write_segment(raw, scene)
    write_segment(raw, scene, split="train", name="segment-1_2_3")
    one, two = tmp_path / "one", tmp_path / "two"
    first = runner.invoke(app, ["prepare", "waymo", str(raw), str(one), "--workers", "1", "--json"])
    second = runner.invoke(app, ["prepare", "waymo", str(raw), str(two), "--workers", "2", "--json"])
    assert first.exit_code == second.exit_code == 0, second.output
    assert tree(one) == tree(two)
    assert tree(one / "val") == tree(prepared[1] / "val")


def test_no_segments_is_a_clear_error(tmp_path):
    (tmp_path / "val").mkdir()
    result = runner.invoke(app, ["prepare", "waymo", str(tmp_path), str(tmp_path / "out")])
    assert result.exit_code == 1 and "segment-*_with_camera_labels.tfrecord" in result.output


def test_a_record_that_is_not_a_frame_names_the_record(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    path = raw / "val" / "segment-9_with_camera_labels.tfrecord"
    path.parent.mkdir(parents=True)
    path.write_bytes(tfrecord.encode_record(f_bytes(1, f_bytes(2, f_int(1, 1)))))  # a FRONT calibration without values
    result = runner.invoke(app, ["prepare", "waymo", str(raw), str(out)])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "val/segment-9_with_camera_labels.tfrecord: the record at byte 0" in text and "intrinsic" in text
