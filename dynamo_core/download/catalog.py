"""What can be downloaded, and from where: released checkpoints, ImageNet weights, split lists."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import ConfigError

MODULE_FILES = tuple(
    f"{m}.pth" for m in ("depth_enc", "depth_dec", "pose_enc", "pose_dec", "motion_enc", "motion_dec", "motion_mask")
)


@dataclass(frozen=True)
class ReleasedModel:
    """A released Dynamo-Depth checkpoint (a zip holding one folder `<name>/` of module files)."""

    name: str
    dataset: str
    depth_model: str  # "litemono" or "monodepthv2"
    drive_id: str | None  # None: not public, available from the authors on request

    @property
    def public(self) -> bool:
        return self.drive_id is not None


RELEASED_MODELS = {
    m.name: m
    for m in (
        ReleasedModel("K_Dynamo-Depth", "kitti", "litemono", "1b1kwxqUquFbSMU9WLAr6_pIbj1HxoWLJ"),
        ReleasedModel("K_Dynamo-Depth_MD2", "kitti", "monodepthv2", "1SLQcCQplfAtqeWUD4TQc42aGpevViTGX"),
        ReleasedModel("N_Dynamo-Depth", "nuscenes", "litemono", "1oqQVFyGxo_SxclpinrBlwGSE1gEfVAZY"),
        ReleasedModel("N_Dynamo-Depth_MD2", "nuscenes", "monodepthv2", "1t0Z_2hD0raAi4vDK_VZFXIcwcTFx0elU"),
        ReleasedModel("W_Dynamo-Depth", "waymo", "litemono", None),
        ReleasedModel("W_Dynamo-Depth_MD2", "waymo", "monodepthv2", None),
    )
}
PUBLIC_MODELS = tuple(name for name, m in RELEASED_MODELS.items() if m.public)

LITEMONO_DRIVE_ID = "1ULWgnlgSaE6UMA8_MBHZMUuGkcBe4C5j"
RESNET_DEPTHS = (18, 34, 50)

DEFAULT_SPLITS_URL = "https://raw.githubusercontent.com/YihongSun/Dynamo-Depth/main/splits"
SPLITS_URL_ENV = "DYNAMO_SPLITS_URL"
# The files each split publishes (the Waymo training list is not public).
SPLIT_FILES = {
    "eigen_zhou": ("train_files.txt", "test_files.txt"),
    "waymo": ("test_files.txt", "test_mask_files.txt"),
    "nuscenes": ("train_files.txt", "test_files.txt", "test_mask_files.txt"),
    "nuscenes_dayclear": ("train_files.txt", "test_files.txt", "test_mask_files.txt"),
}

WAYMO_REQUEST = (
    "{name} is not publicly downloadable: it was trained on the Waymo Open Dataset, whose non-commercial "
    "licence does not allow redistribution. To request it, e-mail the Dynamo-Depth authors "
    "(yihong@cs.cornell.edu, see https://github.com/YihongSun/Dynamo-Depth#evaluation) with your name, "
    "institute, a screenshot of your Waymo Open Dataset registration confirmation and your intended "
    "(non-commercial) use. Then install the zip you receive with "
    "`dynamo download checkpoints {name} --from-file ZIP`."
)


def released_model(name: str) -> ReleasedModel:
    """The released model called `name`; ConfigError listing the known names otherwise."""
    try:
        return RELEASED_MODELS[name]
    except KeyError:
        raise ConfigError(
            f"{name!r} is not a released checkpoint; known names: {', '.join(RELEASED_MODELS)}."
        ) from None


def drive_url(file_id: str) -> str:
    """The browser URL of a Google Drive file id."""
    return f"https://drive.google.com/uc?id={file_id}"


def split_files(name: str) -> tuple[str, ...]:
    """The published files of split `name`; ConfigError listing the known splits otherwise."""
    try:
        return SPLIT_FILES[name]
    except KeyError:
        raise ConfigError(f"{name!r} is not a known split; known splits: {', '.join(SPLIT_FILES)}.") from None


def splits_base_url(base_url: str | None = None) -> str:
    """`base_url`, else $DYNAMO_SPLITS_URL, else the public location; without a trailing slash."""
    return (base_url or os.environ.get(SPLITS_URL_ENV) or DEFAULT_SPLITS_URL).rstrip("/")
