"""The `nuscenes_dayclear` split: the nuScenes test (val) scenes whose description mentions neither night nor rain.

It is a filter of the published `nuscenes` lists, in their order, by the `description` field of
`scene.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dynamo_core.data.splits import SPLIT_FILES, read_split, resolve_split
from dynamo_core.errors import DataError

from .files import write_text_atomic

EXCLUDED_WORDS = ("night", "rain")
DAYCLEAR_FILES = ("test", "test_mask")


@dataclass
class DayClearSplit:
    out: str
    scenes_kept: list[str]
    scenes_dropped: list[str]
    lines: dict[str, int]


def scene_table(source: Path, version: str = "v1.0-trainval") -> Path:
    """`scene.json` itself, or the one under a nuScenes dataroot."""
    for candidate in (source, source / version / "scene.json", source / "scene.json"):
        if candidate.is_file():
            return candidate
    raise DataError(f"no scene.json at {source} or {source / version / 'scene.json'}; pass the nuScenes dataroot "
                    "(the folder holding v1.0-trainval/) or the scene.json file.")


def is_day_clear(description: str) -> bool:
    text = description.lower()
    return not any(word in text for word in EXCLUDED_WORDS)


def write_dayclear(source: Path | str, out: Path | str, version: str = "v1.0-trainval", base: str = "nuscenes") -> DayClearSplit:
    """Filter the `base` split's test lists to day-clear scenes and write them into `out`."""
    path = scene_table(Path(source).expanduser(), version)
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
        descriptions = {r["name"]: r.get("description", "") for r in records}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, KeyError) as err:
        raise DataError(f"{path} is not a nuScenes scene table ({err}); re-extract the metadata archive.") from None
    folder = resolve_split(base)
    lists = {which: read_split(folder, which) for which in DAYCLEAR_FILES}
    scenes = list(dict.fromkeys(line.split()[0] for line in lists["test"]))
    names = {scene: scene.rsplit("/", 1)[-1] for scene in scenes}
    missing = [names[s] for s in scenes if names[s] not in descriptions]
    if missing:
        raise DataError(f"{path} lacks {len(missing)} scenes of the {base} split (e.g. {missing[0]}); "
                        "pass the v1.0-trainval scene table.")
    kept = [s for s in scenes if is_day_clear(descriptions[names[s]])]
    keep = set(kept)
    out = Path(out).expanduser()
    counts = {}
    for which, lines in lists.items():
        chosen = [line for line in lines if line.split()[0] in keep]
        write_text_atomic(out / SPLIT_FILES[which], "".join(f"{line}\n" for line in chosen))
        counts[SPLIT_FILES[which]] = len(chosen)
    return DayClearSplit(str(out), [names[s] for s in kept], [names[s] for s in scenes if s not in keep], counts)
