"""What the user points `dynamo predict` at, resolved into single images and sequences of frames.

An input argument may be an image file, a folder (a sequence, sorted by name), a glob pattern
(each match is a single image), a video (a sequence), `@list.txt` (a sequence of the listed
paths) or `-` (paths on standard input, one per line, a sequence named `stdin`).

Frames are decoded lazily: a sequence of ten thousand video frames is never held in memory.
Bad inputs become `InputFailure`s that name the path; the good ones are still predicted.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence, TextIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov")


@dataclass(frozen=True)
class Frame:
    """One frame of an input: a file, or the `index`-th decoded frame of a video."""

    name: str
    """The stem its outputs are named by: the file's stem, or the video frame's number."""
    path: Path
    index: int | None = None
    """Frame number in the video (after --every), None for image files."""


@dataclass
class Source:
    """A single image or a sequence of frames; `name` names its outputs."""

    name: str
    input: str
    """The argument as the user gave it."""
    frames: list[Frame]
    is_sequence: bool
    video: Path | None = None
    video_every: int = 1
    video_max_frames: int | None = None
    failures: list["InputFailure"] = field(default_factory=list)


@dataclass(frozen=True)
class InputFailure:
    """An input (or one frame of it) that could not be used; `message` is one line naming it."""

    input: str
    message: str


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB.

    EXIF orientation is applied; grayscale, palette and RGBA images become RGB; 16-bit PNGs are
    scaled to 8 bits by their full range (65535 -> 255).
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                pixels = np.asarray(image, dtype=np.float64)
                scale = 255.0 / 65535.0 if pixels.max(initial=0) > 255 or image.mode.startswith("I;16") else 1.0
                gray = np.clip(pixels * scale + 0.5, 0, 255).astype(np.uint8)
                return np.repeat(gray[..., None], 3, axis=2)
            if image.mode == "RGB":
                return np.asarray(image, dtype=np.uint8).copy()
            if image.mode in ("RGBA", "LA", "P", "PA"):
                # Transparent pixels over black, as most viewers show them.
                image = image.convert("RGBA")
                background = Image.new("RGBA", image.size, (0, 0, 0, 255))
                image = Image.alpha_composite(background, image)
            return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not an image.") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path} is not a readable image ({str(err).splitlines()[0] if str(err) else type(err).__name__}).") from None


def _is_image(path: Path, extensions: Sequence[str]) -> bool:
    return path.suffix.lower() in extensions


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def _glob_chars(text: str) -> bool:
    return any(c in text for c in "*?[")


def normalise_extensions(extensions: Sequence[str] | None) -> tuple[str, ...]:
    """['png', '.JPG'] -> ('.png', '.jpg'); None or empty: the image extensions."""
    if not extensions:
        return IMAGE_EXTENSIONS
    out = []
    for ext in extensions:
        ext = ext.strip().lower()
        if ext:
            out.append(ext if ext.startswith(".") else f".{ext}")
    return tuple(out) or IMAGE_EXTENSIONS


def resolve_inputs(
    arguments: Sequence[str],
    *,
    extensions: Sequence[str] | None = None,
    every: int = 1,
    max_frames: int | None = None,
    stdin: TextIO | None = None,
) -> tuple[list[Source], list[InputFailure]]:
    """Turn the command's INPUT arguments into sources, and the bad ones into failures.

    Raises:
        DataError: a folder holds no images (nothing could be done with it), or `-` is given twice.
    """
    if every < 1:
        raise DataError(f"--every must be 1 or more, got {every}.")
    if max_frames is not None and max_frames < 1:
        raise DataError(f"--max-frames must be 1 or more, got {max_frames}.")
    extensions = normalise_extensions(extensions)
    sources: list[Source] = []
    failures: list[InputFailure] = []
    if list(arguments).count("-") > 1:
        raise DataError("`-` (paths on standard input) may be given only once.")
    for argument in arguments:
        if argument == "-":
            import sys

            stream = stdin if stdin is not None else sys.stdin
            paths = [line.strip() for line in stream.read().splitlines() if line.strip()]
            sources.append(_listed("stdin", "-", paths, Path.cwd(), failures))
            continue
        if argument.startswith("@"):
            list_file = Path(argument[1:]).expanduser()
            try:
                lines = list_file.read_text().splitlines()
            except OSError as err:
                failures.append(InputFailure(argument, f"{list_file}: the list file cannot be read ({err.strerror or err})."))
                continue
            paths = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
            sources.append(_listed(list_file.stem, argument, paths, list_file.parent, failures))
            continue
        path = Path(argument).expanduser()
        if path.is_dir():
            frames = sorted(p for p in path.iterdir() if p.is_file() and _is_image(p, extensions))
            if not frames:
                raise DataError(
                    f"{path} holds no images with extensions {', '.join(extensions)}; pick others with --ext."
                )
            sources.append(Source(path.resolve().name or "root", argument, [Frame(p.stem, p) for p in frames], True))
        elif path.is_file():
            if _is_video(path):
                sources.append(Source(path.stem, argument, [], True, video=path, video_every=every,
                                      video_max_frames=max_frames))
            else:
                sources.append(Source(path.stem, argument, [Frame(path.stem, path)], False))
        elif _glob_chars(argument):
            matches = sorted(Path(p) for p in glob.glob(os.path.expanduser(argument), recursive=True))
            matches = [p for p in matches if p.is_file() and (_is_image(p, extensions) or _is_video(p))]
            if not matches:
                failures.append(InputFailure(argument, f"{argument}: the pattern matches no images or videos."))
            for match in matches:
                if _is_video(match):
                    sources.append(Source(match.stem, str(match), [], True, video=match, video_every=every,
                                          video_max_frames=max_frames))
                else:
                    sources.append(Source(match.stem, str(match), [Frame(match.stem, match)], False))
        else:
            failures.append(InputFailure(argument, f"{argument}: no such file or folder."))
    return sources, failures


def _listed(name: str, argument: str, paths: list[str], base: Path, failures: list[InputFailure]) -> Source:
    """A sequence of listed image paths; relative paths are read from `base`."""
    frames = []
    for text in paths:
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = base / path
        if not path.is_file():
            failures.append(InputFailure(text, f"{text}: no such file (listed in {argument})."))
            continue
        frames.append(Frame(path.stem, path))
    seen: dict[str, int] = {}
    unique = []
    for frame in frames:  # listed files from different folders may share a stem
        count = seen.get(frame.name, 0)
        seen[frame.name] = count + 1
        unique.append(frame if count == 0 else Frame(f"{frame.name}_{count}", frame.path))
    return Source(name, argument, unique, True)


def read_video(path: Path, every: int = 1, max_frames: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame number, (H, W, 3) uint8) for every `every`-th frame, at most `max_frames` of them.

    Raises:
        DataError: the file cannot be opened or decoded, or holds no frames.
    """
    import imageio.v2 as imageio

    try:
        reader = imageio.get_reader(str(path), format="FFMPEG")
    except Exception as err:  # imageio raises several types for a corrupt or foreign file
        raise DataError(f"{path} is not a readable video ({_first_line(err)}).") from None
    produced = 0
    try:
        index = 0
        while True:
            try:
                image = reader.get_next_data()
            except (IndexError, StopIteration):
                break
            except Exception as err:
                if produced:
                    break  # a truncated tail: keep what was decoded
                raise DataError(f"{path} is not a readable video ({_first_line(err)}).") from None
            if index % every == 0:
                yield index, np.ascontiguousarray(np.asarray(image, dtype=np.uint8)[..., :3])
                produced += 1
                if max_frames is not None and produced >= max_frames:
                    break
            index += 1
    finally:
        reader.close()
    if produced == 0:
        raise DataError(f"{path} holds no video frames.")


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


FrameLoader = Callable[[], np.ndarray]
