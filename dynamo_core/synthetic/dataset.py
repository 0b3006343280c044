"""Write rendered sequences in the processed Waymo-style layout that the dataset loaders read.

    OUT/<split>/seq-NNNN/FRONT/rgb/original/%06d.jpg     colour at the render size
    OUT/<split>/seq-NNNN/FRONT/rgb/downsample/%06d.jpg   colour at half the render size
    OUT/<split>/seq-NNNN/FRONT/rgb/cam.json              normalised intrinsics ("intrinsic_mat") and size
    OUT/<split>/seq-NNNN/FRONT/depth/%06d.npy            sparse scan, float32 rows [column, row, depth]
    OUT/<split>/seq-NNNN/FRONT/depth_dense/%06d.npy      float16 (H, W) depth, 0 on the sky
    OUT/<split>/seq-NNNN/FRONT/mask/%06d.npz             uint8 (H, W) "semantic" and "motion"
    OUT/<split>/seq-NNNN/FRONT/scene_flow/%06d.npy       float16 (H, W, 3) motion to the next frame
    OUT/<split>/seq-NNNN/FRONT/odometry.txt              camera-to-world 4x4 per frame, vehicle axes
    OUT/<split>/seq-NNNN/sequence.json                   settings and scene summary; written last
    OUT/splits/{train,val,test,test_mask}_files.txt      "<split>/seq-NNNN <frame>" for inner frames
    OUT/synthetic.json                                   settings and label codes; written last

Every file is written to a temporary name in its folder and moved into place, and every
byte is a function of the settings: the same seed gives identical files.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image

from .. import atomic_files
from ..errors import ConfigError, DataError
from ..runtime import keep_freed_memory
from . import scene as sc
from .raycast import Camera
from .render import LIDAR_MAX_DEPTH, MOTION_CODES, SEMANTIC_CODES, render_frame

logger = logging.getLogger(__name__)

FORMAT = "dynamo-synthetic"
FORMAT_VERSION = 2  # 2: one ego speed (0.95-1.05 m per frame) instead of 0.5-1.5
CAMERA = "FRONT"
JPEG_QUALITY = 95
SUPERSAMPLE = 2
_FRAMES_PER_TASK = 10
_SMALL_JOB_PIXELS = 4_000_000  # below this many rendered pixels, worker start-up costs more than it saves
_MANIFEST = "synthetic.json"
_SEQUENCE_MARKER = "sequence.json"

Progress = Callable[[int, int], None]
"""Called with (frames done, frames in total)."""


@dataclass(frozen=True)
class SyntheticSummary:
    """What `generate_dataset` produced."""

    out: Path
    sequences: int
    frames: int
    height: int
    width: int
    seed: int
    train_sequences: tuple[str, ...]
    test_sequences: tuple[str, ...]
    rendered_sequences: int
    skipped_sequences: int
    seconds: float

    def to_dict(self) -> dict:
        data = asdict(self)
        data["out"] = str(self.out)
        data["train_sequences"] = list(self.train_sequences)
        data["test_sequences"] = list(self.test_sequences)
        return data


def generate_dataset(
    out: Path | str,
    sequences: int = 10,
    frames: int = 50,
    height: int = 192,
    width: int = 640,
    seed: int = 0,
    test_sequences: int = 2,
    progress: Optional[Progress] = None,
    workers: Optional[int] = None,
    force: bool = False,
) -> SyntheticSummary:
    """Render `sequences` procedural driving sequences of `frames` frames into `out`.

    The last `test_sequences` sequences go to `out/test`, the others to `out/train`.
    Sequences already complete with the same settings are skipped; `force` renders everything
    again. `workers` processes render in parallel (default: the available cores; small jobs render
    in this process); the output does not depend on it. Workers are started with `spawn`, so a
    script that calls this must do so under `if __name__ == "__main__":`.

    `progress(done, total)` is called with counts of frames as sequences advance.
    """
    _check_settings(sequences, frames, height, width, seed, test_sequences, workers)
    out = Path(out)
    settings = {"frames": frames, "height": height, "width": width, "seed": seed}
    names = [f"seq-{index:04d}" for index in range(sequences)]
    folders = [
        f"{'train' if index < sequences - test_sequences else 'test'}/{name}" for index, name in enumerate(names)
    ]
    started = time.perf_counter()
    if test_sequences == sequences:
        logger.warning("every sequence goes to the test split; %s/splits/train_files.txt will be empty", out)
    try:
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out} is a file; give a folder for the synthetic dataset")
        if force:
            _remove_previous(out)
        else:
            _refuse_other_settings(out, settings, sequences, test_sequences)
        todo = [i for i, folder in enumerate(folders) if force or not _sequence_complete(out / folder, settings, i)]
        skipped = sequences - len(todo)
        if skipped:
            logger.info("%d of %d sequences already complete in %s; skipping them", skipped, sequences, out)
        _render_all(out, folders, todo, settings, progress, workers, frames * skipped, frames * sequences)
        _write_splits(out, folders, sequences - test_sequences, frames)
        manifest = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            **settings,
            "sequences": sequences,
            "test_sequences": test_sequences,
            "folders": folders,
            "camera": CAMERA,
            "semantic_codes": SEMANTIC_CODES,
            "motion_codes": MOTION_CODES,
            "depth": f"sparse float32 rows [column, row, depth] below {LIDAR_MAX_DEPTH:g} m; dense float16, 0 on sky",
            "scene_flow": "float16 (H, W, 3) metres to the next frame in this frame's camera axes, 0 if static",
            "odometry": "camera-to-world 4x4 per line, vehicle axes (x forward, y left, z up)",
        }
        write_atomic(out / _MANIFEST, _json_bytes(manifest))
    except OSError as err:
        raise DataError(f"cannot write the synthetic dataset in {out}: {err}. Check the path and free space.") from err
    return SyntheticSummary(
        out=out,
        sequences=sequences,
        frames=frames,
        height=height,
        width=width,
        seed=seed,
        train_sequences=tuple(folders[: sequences - test_sequences]),
        test_sequences=tuple(folders[sequences - test_sequences :]),
        rendered_sequences=len(todo),
        skipped_sequences=skipped,
        seconds=time.perf_counter() - started,
    )


def _check_settings(sequences, frames, height, width, seed, test_sequences, workers) -> None:
    for name, value in (("height", height), ("width", width)):
        if value < 32 or value % 32:
            nearest = max(32, int(round(value / 32)) * 32)
            raise ConfigError(
                f"--{name} must be a positive multiple of 32 (the networks downsample by 32), got {value}; "
                f"try --{name} {nearest}"
            )
        if value > 4096:
            raise ConfigError(f"--{name} must be at most 4096, got {value}")
    if frames < 3:
        raise ConfigError(f"--frames must be at least 3 (each training frame needs both neighbours), got {frames}")
    if sequences < 1:
        raise ConfigError(f"--sequences must be at least 1, got {sequences}")
    if not 0 <= test_sequences <= sequences:
        raise ConfigError(f"--test-sequences must be between 0 and --sequences ({sequences}), got {test_sequences}")
    if seed < 0:
        raise ConfigError(f"--seed must be zero or positive, got {seed}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")


def _read_json(path: Path, remedy: str = "delete it or pass --force to render the dataset again") -> dict:
    """A manifest or marker written by this generator; anything else is refused, not overwritten."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path} is unreadable ({err}); {remedy}") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f"{path} was not written by `dynamo prepare synthetic`; choose another --out")
    return data


class OtherSettingsError(ConfigError):
    """The output folder already holds scenes made with other settings or by another format version.

    `folder` is the folder concerned; `differences` names what differs, as "key old (now new)"."""

    def __init__(self, message: str, folder: Path, differences: list[str]):
        super().__init__(message)
        self.folder = folder
        self.differences = differences


def _refuse_other_settings(out: Path, settings: dict, sequences: int, test_sequences: int) -> None:
    """A folder holding a dataset made with other settings is not silently mixed with a new one."""
    path = out / _MANIFEST
    if not path.exists():
        return
    manifest = _read_json(path)
    wanted = {**settings, "sequences": sequences, "test_sequences": test_sequences, "version": FORMAT_VERSION}
    _refuse_differences(manifest, wanted, out, "{folder} already holds a synthetic dataset made with other settings: "
                        "{differ}. Pass --force to replace it, or choose another --out.")


def _refuse_differences(found: dict, wanted: dict, folder: Path, message: str) -> None:
    """Raise OtherSettingsError, `message` filled with the folder and what differs, unless `found` has `wanted`."""
    differ = [f"{key} {found.get(key)} (now {value})" for key, value in wanted.items() if found.get(key) != value]
    if differ:
        raise OtherSettingsError(message.format(folder=folder, differ=", ".join(differ)), folder, differ)


def _remove_previous(out: Path) -> None:
    """Delete an earlier run: its manifest and the sequence folders that carry this generator's marker."""
    manifest = out / _MANIFEST
    if manifest.is_file():
        _read_json(manifest, remedy="delete it or choose another --out")  # never remove a foreign file
        manifest.unlink()
    for split in ("train", "test"):
        for folder in sorted((out / split).glob("seq-*")) if (out / split).is_dir() else []:
            if (folder / _SEQUENCE_MARKER).is_file():
                shutil.rmtree(folder)


def _sequence_complete(folder: Path, settings: dict, index: int) -> bool:
    marker = folder / _SEQUENCE_MARKER
    if not marker.is_file():
        return False
    data = _read_json(marker)
    expected = {**settings, "index": index, "version": FORMAT_VERSION}
    _refuse_differences(data, expected, folder, "{folder} holds a sequence rendered with other settings ({differ}); "
                        "pass --force to render it again, or choose another --out")
    return True


@dataclass(frozen=True)
class _Task:
    folder: str
    index: int
    seed: int
    frames: int
    height: int
    width: int
    start: int
    stop: int


def _render_all(out, folders, todo, settings, progress, workers, done, total) -> None:
    tasks = [
        _Task(folder=str(out / folders[i]), index=i, start=a, stop=b, **settings)
        for i in todo
        for a, b in _chunks(settings["frames"])
    ]
    if progress:
        progress(done, total)
    if not tasks:
        return
    remaining = {i: len(_chunks(settings["frames"])) for i in todo}

    def finished(task: _Task) -> None:
        nonlocal done
        done += task.stop - task.start
        remaining[task.index] -= 1
        if remaining[task.index] == 0:
            _finish_sequence(Path(task.folder), task)
        if progress:
            progress(done, total)

    pixels = len(todo) * settings["frames"] * settings["height"] * settings["width"]
    if pixels < _SMALL_JOB_PIXELS and (workers is None or workers == 1):
        for task in tasks:
            _render_task(task)
            finished(task)
        return
    processes = min(workers or _available_cores(), len(tasks))
    context = get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context, initializer=keep_freed_memory) as pool:
        futures = {pool.submit(_render_task, task): task for task in tasks}
        try:
            for future in as_completed(futures):
                future.result()
                finished(futures[future])
        except BrokenProcessPool as err:
            raise DataError(
                f"a rendering worker stopped unexpectedly ({err}); run again with --workers 1, and call "
                "generate_dataset from a script only under `if __name__ == '__main__':`"
            ) from err
        except BaseException:
            for future in futures:  # do not wait for work nobody will use
                future.cancel()
            raise


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _chunks(frames: int) -> list[tuple[int, int]]:
    return [(a, min(a + _FRAMES_PER_TASK, frames)) for a in range(0, frames, _FRAMES_PER_TASK)]


def sequence_scene(seed: int, index: int, frames: int) -> sc.Scene:
    """The scene of sequence `index` of a dataset with this seed (independent of the image size)."""
    return sc.build_scene(np.random.default_rng([seed, index]), frames)


def _render_task(task: _Task) -> None:
    """Render and write frames [start, stop) of one sequence. Runs in worker processes."""
    scene = sequence_scene(task.seed, task.index, task.frames)
    camera = Camera.for_size(task.height, task.width)
    root = Path(task.folder) / CAMERA
    for sub in ("rgb/original", "rgb/downsample", "depth", "depth_dense", "mask", "scene_flow"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for frame in range(task.start, task.stop):
        image, truth = render_frame(scene, camera, frame, SUPERSAMPLE)
        name = f"{frame:06d}"
        write_atomic(root / "rgb" / "original" / f"{name}.jpg", _jpeg_bytes(image))
        half = image.reshape(task.height // 2, 2, task.width // 2, 2, 3).mean(axis=(1, 3))
        write_atomic(root / "rgb" / "downsample" / f"{name}.jpg", _jpeg_bytes(half))
        write_atomic(root / "depth" / f"{name}.npy", _npy_bytes(truth.lidar))
        write_atomic(root / "depth_dense" / f"{name}.npy", _npy_bytes(truth.depth.astype(np.float16)))
        write_atomic(root / "mask" / f"{name}.npz", _npz_bytes({"semantic": truth.semantic, "motion": truth.motion}))
        write_atomic(root / "scene_flow" / f"{name}.npy", _npy_bytes(truth.scene_flow.astype(np.float16)))


def _finish_sequence(folder: Path, task: _Task) -> None:
    """Per-sequence files, then the marker that says the sequence is complete."""
    scene = sequence_scene(task.seed, task.index, task.frames)
    camera = Camera.for_size(task.height, task.width)
    root = folder / CAMERA
    cam = {
        "intrinsic_mat": camera.normalised_matrix().tolist(),
        "dim": [task.height, task.width],
        "intrinsic": [camera.focal, camera.focal, camera.cx, camera.cy, 0.0, 0.0, 0.0, 0.0, 0.0],
        "extrinsic": np.eye(4).reshape(-1).tolist(),
    }
    write_atomic(root / "rgb" / "cam.json", _json_bytes(cam))
    lines = [" ".join(repr(float(v)) for v in scene.ego.camera_to_world(k).reshape(-1)) for k in range(task.frames)]
    write_atomic(root / "odometry.txt", ("\n".join(lines) + "\n").encode())
    moving = scene.boxes.kind == sc.VEHICLE
    marker = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "index": task.index,
        "seed": task.seed,
        "frames": task.frames,
        "height": task.height,
        "width": task.width,
        "ego_speed": scene.ego.speed,
        "camera_height": scene.ego.height,
        "vehicle_velocities": scene.boxes.velocity[moving].tolist(),
    }
    write_atomic(folder / _SEQUENCE_MARKER, _json_bytes(marker))


def _write_splits(out: Path, folders: list[str], train_count: int, frames: int) -> None:
    def lines(selected: list[str]) -> bytes:
        return "".join(f"{folder} {k}\n" for folder in selected for k in range(1, frames - 1)).encode()

    train, test = folders[:train_count], folders[train_count:]
    splits = out / "splits"
    splits.mkdir(parents=True, exist_ok=True)
    write_atomic(splits / "train_files.txt", lines(train))
    # Validation during training uses the held-out sequences too.
    write_atomic(splits / "val_files.txt", lines(test))
    write_atomic(splits / "test_files.txt", lines(test))
    write_atomic(splits / "test_mask_files.txt", lines(test))


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then move it into place."""
    atomic_files.atomic_write(path, lambda stream: stream.write(data))


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def _jpeg_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_to_uint8(image)).save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False)
    return buffer.getvalue()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz archive with a fixed timestamp, so identical arrays give identical bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, _npy_bytes(array))
    return buffer.getvalue()


def _json_bytes(document: dict) -> bytes:
    return (json.dumps(document, indent=2) + "\n").encode()
