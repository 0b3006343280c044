"""Shared test helpers: where the fixtures and the sample data live, and the deterministic fill rule.

Fixture folders (each holds files in the format of tests/fixtures/README.md):

- `tests/fixtures`, committed: small files made by the original implementation. Always used.
- the folder named by `DYNAMO_FIXTURES`, when set;
- `$DYNAMO_SHARED/fixtures/reference`, when it exists.

Every parity test runs once per fixture file found in any of them.

The sample data (tiny KITTI, Waymo and nuScenes frames from the original release's `assets/`,
and the fixtures made from them) live in the folder named by `DYNAMO_SHARED`, which holds
`data/` and `fixtures/`. Tests that need them carry the `sample_data` marker; they are skipped
when the data are absent, and fail under `CI=true`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DYNAMO_SHARED") or ROOT.parent / "shared").resolve()
LOCAL_FIXTURES = ROOT / "tests" / "fixtures"
# The reference fixtures made from the sample data: loaders.pt and prepare_kitti.pt live only here.
REFERENCE = SHARED / "fixtures" / "reference"
SAMPLE_DATA = SHARED / "data"

# Everything a `sample_data` test may read.
SAMPLE_PATHS = (
    SAMPLE_DATA / "tiny_kitti",
    SAMPLE_DATA / "tiny_waymo",
    SAMPLE_DATA / "tiny_nuscenes",
    SHARED / "splits",
    REFERENCE / "loaders.pt",
    REFERENCE / "prepare_kitti.pt",
)

SAMPLE_DATA_REASON = (
    "needs the sample data: set DYNAMO_SHARED to a folder holding data/ (tiny_kitti, tiny_waymo, "
    "tiny_nuscenes: the sample frames in the original Dynamo-Depth release's assets/), splits/ (the "
    "published split lists) and fixtures/reference/ (loaders.pt, prepare_kitti.pt)"
)


def pytest_configure(config):
    """Convolution layout plans measured by the tests go to a scratch cache, not the user's."""
    import tempfile

    os.environ.setdefault("DYNAMO_CACHE_DIR", tempfile.mkdtemp(prefix="dynamo-test-cache-"))


def fixture_folders() -> list[Path]:
    """Every fixture folder in use, in order, each once."""
    folders = [LOCAL_FIXTURES]
    if os.environ.get("DYNAMO_FIXTURES"):
        folders.append(Path(os.environ["DYNAMO_FIXTURES"]))
    if REFERENCE.is_dir():
        folders.append(REFERENCE)
    unique: dict[Path, Path] = {}
    for folder in folders:
        unique.setdefault(folder.resolve(), folder.resolve())
    return list(unique)


def _folder_label(folder: Path) -> str:
    if folder == LOCAL_FIXTURES.resolve():
        return "small"
    if folder == REFERENCE.resolve():
        return "reference"
    return folder.name


def fixture_files(pattern: str) -> list[Path]:
    """Files matching `pattern` in every fixture folder."""
    return [path for folder in fixture_folders() for path in sorted(folder.glob(pattern))]


def fixture_id(path: Path) -> str:
    """'small/parity_litemono' for tests/fixtures/parity_litemono.pt."""
    return f"{_folder_label(path.parent)}/{path.stem}"


def parity_files() -> list[Path]:
    files = fixture_files("parity_*.pt")
    if not files:
        raise RuntimeError(f"no parity_*.pt fixture files in {', '.join(map(str, fixture_folders()))}")
    return files


MODULE_ORDER = ("depth_enc", "depth_dec", "pose_enc", "pose_dec", "motion_enc", "motion_dec", "motion_mask")


def load_fixture(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def fill_module(module: torch.nn.Module, seed: int, index: int) -> None:
    """The fixture README's deterministic fill rule, applied in place."""
    generator = torch.Generator().manual_seed(seed * 100 + index)
    state = module.state_dict()
    for name in sorted(state):
        tensor = state[name]
        if not tensor.is_floating_point():
            continue
        u = torch.rand(tensor.shape, generator=generator, dtype=torch.float64)
        if name.endswith("running_var"):
            value = 0.5 + u
        elif tensor.dim() >= 2:
            value = (2 * u - 1) * math.sqrt(3 / (tensor.numel() // tensor.shape[0]))
        elif name.endswith("weight"):
            value = 1 + 0.1 * (2 * u - 1)
        else:
            value = 0.1 * (2 * u - 1)
        tensor.copy_(value.to(tensor.dtype))


def fill_model(model: torch.nn.Module, seed: int) -> None:
    for index, name in enumerate(MODULE_ORDER):
        fill_module(getattr(model, name), seed, index)


def float_rounding_bound(reference64: list[torch.Tensor], reference32: list[torch.Tensor]) -> list[float]:
    """Per tensor, how far float32 rounding alone moves a result: 8 x |float32 - float64|_max, at least
    a few float32 ulps of the largest entry. Two float32 summation orders differ by about that much."""
    return [max(8 * float((a.double() - b).abs().max()), 8 * torch.finfo(torch.float32).eps * float(b.abs().max()))
            for a, b in zip(reference32, reference64)]


def parse_key(key: str) -> tuple:
    """'disp/0/2' -> ('disp', 0, 2)."""
    name, *rest = key.split("/")
    return (name, *(int(p) for p in rest))


def fixture_inputs(fixture: dict) -> dict:
    return {parse_key(k): v for k, v in fixture["inputs"].items()}


def fixture_objective(fixture: dict, phase_name: str, inputs: dict, outputs: dict, **overrides):
    """The objective of one phase on the fixture's batch, as the reference records were taken:
    step 10 of 100, the fixture's ground planes injected, a fixed generator. `overrides` replace
    any of these keyword arguments of losses.compute."""
    from dynamo_core import losses

    batch = dict(inputs)
    for scale, image in losses.color_pyramid(inputs["color", 0, 0], fixture["scales"]).items():
        batch["color", 0, scale] = image
    planes = {index: plane for index, plane in enumerate(fixture["phases"][phase_name]["planes"])}
    kwargs = dict(
        step=10,
        steps_per_epoch=100,
        frame_ids=fixture["frame_ids"],
        scales=fixture["scales"],
        min_depth=float(fixture["min_depth"]),
        max_depth=float(fixture["max_depth"]),
        planes=planes,
        generator=torch.Generator().manual_seed(0),
    )
    kwargs.update(overrides)
    return losses.compute(batch, outputs, losses.PHASES[phase_name], **kwargs)


def model_config_for(fixture: dict):
    from dynamo_core.config import ModelConfig

    return ModelConfig(
        depth_model=fixture["model"],
        weights_init="scratch",
        height=int(fixture["height"]),
        width=int(fixture["width"]),
        scales=[int(s) for s in fixture["scales"]],
        frame_ids=[int(f) for f in fixture["frame_ids"]],
        min_depth=float(fixture["min_depth"]),
        max_depth=float(fixture["max_depth"]),
    )


@pytest.fixture(scope="session", params=parity_files(), ids=fixture_id)
def parity_fixture(request) -> dict:
    return load_fixture(request.param)


@pytest.fixture(scope="session", params=fixture_files("metrics.pt"), ids=fixture_id)
def metrics_file(request) -> dict:
    """metrics.pt of each fixture folder."""
    return load_fixture(request.param)


@pytest.fixture(scope="session")
def filled_model(parity_fixture):
    """The fixture's model, filled by the fill rule and in eval mode."""
    from dynamo_core.model import DynamoModel

    model = DynamoModel(model_config_for(parity_fixture))
    fill_model(model, int(parity_fixture["seed"]))
    return model.eval()


def missing_sample_data() -> list[Path]:
    return [path for path in SAMPLE_PATHS if not path.exists()]


def pytest_runtest_setup(item):
    """Skip a `sample_data` test without the data; under CI=true, where the data are always
    present, fail it instead, naming what is missing."""
    if item.get_closest_marker("sample_data") is None:
        return
    missing = missing_sample_data()
    if not missing:
        return
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"CI=true but the sample data are missing: {', '.join(map(str, missing))}; {SAMPLE_DATA_REASON}",
                    pytrace=False)
    pytest.skip(SAMPLE_DATA_REASON)


# ---------------------------------------------------------------- generated stand-ins for the sample data

KITTI_DRIVE = "2011_09_26/2011_09_26_drive_0001_sync"
KITTI_FULL_SIZE = (375, 1242)


def write_kitti_drive(root: Path, size: tuple[int, int] = (192, 640), seed: int = 0) -> Path:
    """A drive in the processed KITTI layout, like the sample data's tiny_kitti: frames 0-2 of
    `KITTI_DRIVE` for both cameras (rgb/downsample JPEGs at `size`, rgb/original PNGs at the
    full 375x1242, depth/*.npy rows of [row, col, depth] at full size) and a calib_cam_to_cam.txt.
    The frames are rendered by the synthetic scene generator, so they move like a driving camera.
    Returns `root`."""
    import numpy as np
    from PIL import Image

    from dynamo_core.synthetic import generate_dataset

    rendered = root.parent / f"{root.name}-rendered"
    generate_dataset(rendered, sequences=1, frames=3, height=size[0], width=size[1], seed=seed, test_sequences=0, workers=1)
    front = rendered / "train" / "seq-0000" / "FRONT"
    drive = root / KITTI_DRIVE
    full_h, full_w = KITTI_FULL_SIZE
    for camera in ("image_02", "image_03"):
        for sub in ("rgb/downsample", "rgb/original", "depth"):
            (drive / camera / sub).mkdir(parents=True, exist_ok=True)
        for frame in range(3):
            image = Image.open(front / "rgb" / "downsample" / f"{frame:06d}.jpg").convert("RGB")
            image.save(drive / camera / "rgb" / "downsample" / f"{frame:010d}.jpg", quality=95)
            image.resize((full_w, full_h), Image.BICUBIC).save(drive / camera / "rgb" / "original" / f"{frame:010d}.png")
            col, row, depth = np.load(front / "depth" / f"{frame:06d}.npy").astype(np.float64).T
            points = np.stack([np.round(row * full_h / size[0]), np.round(col * full_w / size[1]), depth], axis=1)
            points[:, 0] = points[:, 0].clip(0, full_h - 1)
            points[:, 1] = points[:, 1].clip(0, full_w - 1)
            np.save(drive / camera / "depth" / f"{frame:010d}.npy", points)
    lines = [f"S_rect_0{c}: {full_w:.6e} {full_h:.6e}" for c in range(4)]
    lines += [f"P_rect_0{c}: 7.215377e+02 0.000000e+00 6.095593e+02 {-387.57 * (c % 2):.6e} 0.000000e+00 "
              f"7.215377e+02 1.728540e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00"
              for c in range(4)]
    (drive / "calib_cam_to_cam.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_kitti(tmp_path_factory) -> Path:
    """A generated stand-in for the sample data's tiny_kitti (same drive, frames and layout)."""
    return write_kitti_drive(tmp_path_factory.mktemp("generated") / "tiny_kitti")


def write_split_lists(root: Path) -> Path:
    """Split lists in the published format (`<folder> <frame index> [l|r]` lines) for every split the
    download catalog knows, with a few hundred lines each; returns `root`, which holds `<name>/<file>`."""
    from dynamo_core.download import SPLIT_FILES

    for name, files in SPLIT_FILES.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for number, file_name in enumerate(files):
            if name == "eigen_zhou":
                lines = [f"2011_09_26/2011_09_26_drive_{d:04d}_sync {i} {'lr'[i % 2]}" for d in range(1, 4) for i in range(number, 150, 2)]
            else:
                lines = [f"scenes/scene-{s:04d} {i}" for s in range(1, 4) for i in range(number, 100, 2)]
            (root / name / file_name).write_text("\n".join(lines) + "\n")
    return root
