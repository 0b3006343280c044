"""Input kinds: image files of every mode, folders, globs, videos, list files and stdin."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dynamo_core.errors import DataError
from dynamo_core.prediction.inputs import read_rgb, read_video, resolve_inputs
from predict_helpers import small_image


def test_modes_become_rgb(tmp_path):
    grey = small_image(tmp_path / "grey.png", mode="L")
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (8, 6), (10, 20, 30, 255)).save(rgba)
    sixteen = tmp_path / "sixteen.png"
    Image.fromarray(np.full((6, 8), 65535, dtype=np.uint16)).save(sixteen)
    for path in (grey, rgba, sixteen, small_image(tmp_path / "c.jpg")):
        image = read_rgb(path)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert (read_rgb(sixteen) == 255).all()
    assert tuple(read_rgb(rgba)[0, 0]) == (10, 20, 30)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(np.zeros((10, 20, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert read_rgb(path).shape == (20, 10, 3)


def test_corrupt_and_missing_files_name_the_path(tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not a png")
    with pytest.raises(DataError, match="corrupt.png"):
        read_rgb(corrupt)
    with pytest.raises(DataError, match="missing.png"):
        read_rgb(tmp_path / "missing.png")


def test_every_kind_of_argument(tmp_path):
    folder = tmp_path / "seq"
    for i in (2, 0, 1):
        small_image(folder / f"{i:03d}.png", seed=i)
    small_image(folder / "skip.jpg")
    single = small_image(tmp_path / "one.jpg")
    listed = tmp_path / "frames.txt"
    listed.write_text(f"# a comment\n{folder / '000.png'}\nseq/001.png\n")
    stdin = io.StringIO(f"{single}\n\n{folder / '002.png'}\n")
    sources, failures = resolve_inputs(
        [str(folder), str(single), str(tmp_path / "seq" / "00*.png"), f"@{listed}", "-", str(tmp_path / "nope.png")],
        extensions=["png"], stdin=stdin,
    )
    assert [f.message for f in failures] == [f"{tmp_path / 'nope.png'}: no such file or folder."]
    kinds = [(s.name, s.is_sequence, [f.name for f in s.frames]) for s in sources]
    assert kinds == [
        ("seq", True, ["000", "001", "002"]),
        ("one", False, ["one"]),
        ("000", False, ["000"]), ("001", False, ["001"]), ("002", False, ["002"]),
        ("frames", True, ["000", "001"]),
        ("stdin", True, ["one", "002"]),
    ]


def test_a_folder_without_images_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        resolve_inputs([str(tmp_path / "empty")])


def test_video_frames_with_every_and_max_frames(tmp_path):
    import imageio.v2 as imageio

    path = tmp_path / "clip.mp4"
    writer = imageio.get_writer(str(path), format="FFMPEG", fps=5, macro_block_size=1, ffmpeg_log_level="error")
    for i in range(7):
        writer.append_data(np.full((32, 48, 3), i * 30, np.uint8))
    writer.close()
    sources, failures = resolve_inputs([str(path)], every=2, max_frames=3)
    assert not failures and sources[0].is_sequence and sources[0].video == path
    frames = list(read_video(path, every=2, max_frames=3))
    assert [n for n, _ in frames] == [0, 2, 4]
    assert frames[0][1].shape == (32, 48, 3)
    empty = tmp_path / "broken.mp4"
    empty.write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="broken.mp4"):
        list(read_video(empty))
