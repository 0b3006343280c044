"""`dynamo predict` without the command line: sources in, files out, one record per frame.

Layout: a sequence goes to `OUT/<input stem>/<frame stem>_<output>.<ext>` with `poses.txt`,
`poses_tum.txt` and (with `video`) `panels.mp4`; a single image to `OUT/<stem>_<output>.<ext>`.
Nothing is overwritten without `force`; every file is written atomically.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from ..errors import ConfigError, DataError, DynamoError
from . import writers
from .geometry import backproject_depth, ground_plane_scale
from .inputs import InputFailure, Source, read_rgb, read_video

log = logging.getLogger(__name__)


@dataclass
class PredictOptions:
    out: Path
    save: tuple[str, ...] | None = None
    """Outputs per frame (writers.OUTPUTS); None: depth_npy, depth_png, disparity_png (+ mask_png for sequences)."""
    motion: bool = True
    force: bool = False
    batch_size: int = 8
    camera_height: float | None = None
    depth_scale: float | None = None
    video: bool = False
    """Also write panels.mp4 per sequence."""

    def validate(self) -> None:
        if self.save is not None:
            unknown = [name for name in self.save if name not in writers.OUTPUTS]
            if unknown:
                raise ConfigError(f"--save: unknown output {', '.join(unknown)}; choose from {', '.join(writers.OUTPUTS)}.")
            if not self.save:
                raise ConfigError(f"--save needs at least one of {', '.join(writers.OUTPUTS)}.")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}.")
        if self.camera_height is not None and self.depth_scale is not None:
            raise ConfigError("--camera-height and --depth-scale exclude each other; give one.")
        if self.camera_height is not None and not self.camera_height > 0:
            raise ConfigError(f"--camera-height must be a positive number of metres, got {self.camera_height}.")
        if self.depth_scale is not None and not self.depth_scale > 0:
            raise ConfigError(f"--depth-scale must be positive, got {self.depth_scale}.")

    def outputs_for(self, sequence: bool) -> tuple[str, ...]:
        if self.save is None:
            return writers.SEQUENCE_DEFAULT_OUTPUTS if sequence and self.motion else writers.DEFAULT_OUTPUTS
        names = tuple(self.save)
        if not (sequence and self.motion):
            names = tuple(n for n in names if n not in writers.MOTION_OUTPUTS)
        return names


@dataclass
class FrameRecord:
    """One line of `--json`: what was written for one frame."""

    input: str
    frame: str | None
    height: int | None
    width: int | None
    outputs: dict[str, str]
    seconds: float
    scale: float | None = None

    def to_dict(self) -> dict:
        data = {"input": self.input, "frame": self.frame, "height": self.height, "width": self.width,
                "outputs": self.outputs}
        if self.scale is not None:
            data["scale"] = self.scale
        data["seconds"] = round(self.seconds, 6)
        return data


@dataclass
class PredictSummary:
    frames: int = 0
    sources: int = 0
    failures: list[InputFailure] = field(default_factory=list)
    files: int = 0


def check_output_folder(out: Path) -> Path:
    """Create `out` and check that files can be written there, before any work."""
    out = Path(out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=out, prefix=".dynamo-write-check.")
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(f"--out {out} cannot be written ({err.strerror or err}); choose another folder.") from None
    return out


def plan_conflicts(sources: Sequence[Source], options: PredictOptions) -> None:
    """Two single images with the same stem, or an existing output without --force: an error before work."""
    seen: dict[str, str] = {}
    for source in sources:
        key = source.name if source.is_sequence else f"{source.name}_"
        if key in seen and seen[key] != source.input:
            raise ConfigError(
                f"{seen[key]} and {source.input} would write the same outputs ({options.out / source.name}*); "
                "predict them into different --out folders or rename one."
            )
        seen[key] = source.input
        if options.force:
            continue
        if source.is_sequence:
            folder = options.out / source.name
            if folder.is_dir() and any(folder.iterdir()):
                raise ConfigError(f"{folder} already holds outputs; pass --force to overwrite them.")
        else:
            for name in options.outputs_for(False):
                path = options.out / f"{source.name}{writers.SUFFIXES[name]}"
                if path.exists():
                    raise ConfigError(f"{path} already exists; pass --force to overwrite it.")


def _frames(source: Source, failures: list[InputFailure]) -> Iterator[tuple[str, int, np.ndarray]]:
    """(frame name, order index, RGB) for every readable frame; unreadable ones become failures."""
    if source.video is not None:
        try:
            for number, image in read_video(source.video, source.video_every, source.video_max_frames):
                yield f"{number:06d}", number, image
        except DataError as err:
            failures.append(InputFailure(source.input, str(err)))
        return
    for order, frame in enumerate(source.frames):
        try:
            image = read_rgb(frame.path)
        except DataError as err:
            failures.append(InputFailure(str(frame.path), str(err)))
            continue
        yield frame.name, order, image


class _Writer:
    def __init__(self, predictor, options: PredictOptions, summary: PredictSummary):
        self.predictor = predictor
        self.options = options
        self.summary = summary

    def scale_of(self, depth: np.ndarray, K: np.ndarray) -> float | None:
        if self.options.depth_scale is not None:
            return float(self.options.depth_scale)
        if self.options.camera_height is not None:
            scale = ground_plane_scale(depth, K, self.options.camera_height)
            if scale is None:
                log.warning("no road plane could be fitted; this frame's depth stays unscaled")
            return scale
        return None

    def frame(self, folder: Path, stem: str, names: tuple[str, ...], image: np.ndarray, depth: np.ndarray,
              mask: np.ndarray | None, flow: np.ndarray | None) -> tuple[dict[str, str], float | None]:
        """Write one frame's outputs; returns {output: path} and the scale applied."""
        force = self.options.force
        height, width = depth.shape
        K = self.predictor.intrinsics.matrix(height, width)
        scale = self.scale_of(depth, K)
        if scale is not None:
            depth = depth * np.float32(scale)
            if flow is not None:
                flow = flow * np.float32(scale)
        written: dict[str, str] = {}

        def path(name: str) -> Path:
            return folder / f"{stem}{writers.SUFFIXES[name]}"

        for name in names:
            target = path(name)
            if name == "depth_npy":
                writers.write_npy(target, depth.astype(np.float32), force)
            elif name == "depth_png":
                writers.write_depth_png(target, depth, force)
            elif name == "disparity_png":
                writers.write_rgb_png(target, writers.colour_disparity(depth), force)
            elif name == "ply":
                points = backproject_depth(depth, K).reshape(-1, 3)
                writers.write_ply(target, points, image.reshape(-1, 3), force)
            elif name in ("mask_png", "mask_npy"):
                if mask is None:
                    continue
                if name == "mask_png":
                    writers.write_mask_png(target, mask, force)
                else:
                    writers.write_npy(target, mask.astype(np.float32), force)
            elif name == "flow_npy":
                if flow is None:
                    continue
                writers.write_npy(target, flow.astype(np.float32), force)
            written[name] = str(target)
        self.summary.files += len(written)
        return written, scale


def run_predict(
    predictor,
    sources: Sequence[Source],
    options: PredictOptions,
    *,
    on_frame: Callable[[FrameRecord], None] = lambda record: None,
    on_failure: Callable[[InputFailure], None] = lambda failure: None,
    progress: Callable[[str, int, int | None], None] = lambda name, done, total: None,
) -> PredictSummary:
    """Predict every source into `options.out`; failures of single inputs are reported, not raised."""
    options.validate()
    options.out = check_output_folder(options.out)
    plan_conflicts(sources, options)
    if options.motion and any(s.is_sequence for s in sources) and not predictor.has_motion:
        raise ConfigError(
            "the checkpoint was loaded without the pose and motion networks, which sequences use for the motion "
            "mask and ego-motion; use a complete checkpoint or pass --no-motion."
        )
    summary = PredictSummary(sources=len(sources))
    writer = _Writer(predictor, options, summary)
    singles: list[Source] = []  # consecutive single images, predicted together up to --batch-size

    def report(failures: list[InputFailure]) -> None:
        for failure in failures:
            on_failure(failure)
        summary.failures.extend(failures)

    def flush_singles() -> None:
        if singles:
            report(_run_singles(predictor, writer, singles, options, on_frame))
            singles.clear()

    for source in sources:
        if not source.is_sequence:
            singles.append(source)
            if len(singles) == options.batch_size:
                flush_singles()
            continue
        flush_singles()
        failures: list[InputFailure] = []
        with _failures_of(source, failures):
            _run_sequence(predictor, writer, source, options, on_frame, failures, progress)
        report(failures)
    flush_singles()
    return summary


@contextlib.contextmanager
def _failures_of(source: Source, failures: list[InputFailure]):
    """Turns a DynamoError or an output error raised for `source` into one failure naming it."""
    try:
        yield
    except DynamoError as err:
        failures.append(InputFailure(source.input, str(err)))
    except OSError as err:
        failures.append(InputFailure(source.input, f"{source.input}: an output could not be written ({err})."))


def _run_singles(predictor, writer: _Writer, sources: list[Source], options: PredictOptions,
                 on_frame) -> list[InputFailure]:
    """Single images: read each, predict the readable ones as one batch, write each; returns the failures."""
    failures: list[InputFailure] = []
    read: list[tuple[Source, np.ndarray, float]] = []
    for source in sources:
        started = time.perf_counter()
        try:
            read.append((source, read_rgb(source.frames[0].path), time.perf_counter() - started))
        except DataError as err:
            failures.append(InputFailure(source.input, str(err)))
    if not read:
        return failures
    started = time.perf_counter()
    try:
        depths = predictor.predict_depth([image for _, image, _ in read], batch_size=len(read))
    except DynamoError as err:
        return failures + [InputFailure(source.input, str(err)) for source, _, _ in read]
    shared = (time.perf_counter() - started) / len(read)
    for (source, image, read_seconds), depth in zip(read, depths):
        started = time.perf_counter()
        with _failures_of(source, failures):
            outputs, scale = writer.frame(options.out, source.name, options.outputs_for(False), image, depth, None, None)
            writer.summary.frames += 1
            on_frame(FrameRecord(source.input, source.frames[0].name, depth.shape[0], depth.shape[1], outputs,
                                 read_seconds + shared + time.perf_counter() - started, scale))
    return failures


def _run_sequence(predictor, writer: _Writer, source: Source, options: PredictOptions, on_frame, failures,
                  progress) -> None:
    folder = options.out / source.name
    names = options.outputs_for(True)
    window = None
    if options.motion:
        from .predictor import SequenceWindow

        window = SequenceWindow(predictor, motion=True)
    chunk = options.batch_size
    total = len(source.frames) if source.video is None else None
    relative: list[np.ndarray | None] = []
    stamps: list[float] = []
    scales: list[float] = []
    panels: list[np.ndarray] = []
    done = 0

    def process(previous, centre, following):
        nonlocal done
        started = time.perf_counter()
        entries = ([previous] if previous is not None else []) + centre + ([following] if following is not None else [])
        offset = 1 if previous is not None else 0
        rgb = [entry[2] for entry in entries]
        indices = list(range(offset, offset + len(centre)))
        if window is not None:
            result = window.run(rgb, indices, batch_size=chunk)
            relative.extend(result.relative_poses)  # the pairs ending at each centre frame
        else:
            result = _depth_only(predictor, rgb, indices, chunk)
        seconds = (time.perf_counter() - started) / max(len(centre), 1)
        for k, (name, order, image) in enumerate(centre):
            started = time.perf_counter()
            mask = result.mask[k] if result.mask else None
            flow = result.flow[k] if result.flow else None
            outputs, scale = writer.frame(folder, name, names, image, result.depth[k], mask, flow)
            if scale is not None:
                scales.append(scale)
            stamps.append(float(order))
            if options.video:
                panels.append(_panel(predictor, image, result.depth[k], mask))
            writer.summary.frames += 1
            done += 1
            on_frame(FrameRecord(source.input, name, image.shape[0], image.shape[1], outputs,
                                 seconds + time.perf_counter() - started, scale))
            progress(source.name, done, total)

    previous = None
    buffer: list[tuple[str, int, np.ndarray]] = []
    for entry in _frames(source, failures):
        buffer.append(entry)
        if len(buffer) == chunk + 1:
            process(previous, buffer[:chunk], buffer[chunk])
            previous = buffer[chunk - 1]
            buffer = buffer[chunk:]
    if buffer:
        process(previous, buffer, None)
    if done == 0:
        return
    sequence_outputs: dict[str, str] = {}
    if window is not None and stamps:
        from .sequence import SequencePrediction

        trajectory = SequencePrediction(depth=[], relative_poses=relative).trajectory
        if options.depth_scale is not None or scales:
            factor = options.depth_scale if options.depth_scale is not None else float(np.median(scales))
            trajectory = trajectory.copy()
            trajectory[:, :3, 3] *= factor
        files = writers.write_poses(folder, trajectory, stamps, options.force)
        sequence_outputs.update(poses_txt=str(files[0]), poses_tum=str(files[1]))
    if options.video and panels:
        from ..visualize import write_mp4

        target = folder / "panels.mp4"
        if target.exists() and not options.force:
            raise writers.OutputExists(f"{target} already exists; pass --force to overwrite it.")
        write_mp4(panels, target)
        sequence_outputs["video"] = str(target)
    if sequence_outputs:
        writer.summary.files += len(sequence_outputs)
        on_frame(FrameRecord(source.input, None, None, None, sequence_outputs, 0.0))


def _depth_only(predictor, rgb, indices, batch_size):
    from .sequence import SequencePrediction

    depth = predictor.predict_depth([rgb[i] for i in indices], batch_size=batch_size)
    return SequencePrediction(depth=depth)


def _panel(predictor, image: np.ndarray, depth: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Image, colour-mapped disparity and motion mask stacked vertically at the model's size."""
    from PIL import Image

    size = (predictor.width, predictor.height)

    def fit(array):
        return np.asarray(Image.fromarray(array).resize(size, Image.Resampling.BILINEAR))

    rows = [fit(image), fit(writers.colour_disparity(depth))]
    if mask is not None:
        grey = np.clip(mask * 255 + 0.5, 0, 255).astype(np.uint8)
        rows.append(fit(np.repeat(grey[..., None], 3, axis=2)))
    else:
        rows.append(np.zeros((predictor.height, predictor.width, 3), dtype=np.uint8))
    return np.concatenate(rows, axis=0)
