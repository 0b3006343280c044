"""Downloads: released checkpoints, ImageNet encoder weights and the standard split lists.

Every file goes to a hidden temporary file or folder inside its target folder, is checked
(whole zip, expected module files, `torch.load(..., weights_only=True)`, plausible split
lines), and only then moved into place with `os.replace`. A failure leaves nothing behind.
`transport.fetch` is the one function that touches the network.
"""

from .catalog import (
    DEFAULT_SPLITS_URL,
    MODULE_FILES,
    PUBLIC_MODELS,
    RELEASED_MODELS,
    SPLIT_FILES,
    SPLITS_URL_ENV,
    ReleasedModel,
    released_model,
)
from .checkpoints import download_checkpoint, download_checkpoints, install_checkpoint_zip, resolve_checkpoint
from .pretrained import (
    LITEMONO_FILE,
    download_litemono,
    download_pretrained,
    download_resnet,
    litemono_destination,
    resnet_destination,
)
from .results import DownloadResult, TransferProgress
from .splits import download_split, download_splits
from .transport import DownloadError, NotPublicError, fetch

__all__ = [
    "DEFAULT_SPLITS_URL",
    "LITEMONO_FILE",
    "MODULE_FILES",
    "PUBLIC_MODELS",
    "RELEASED_MODELS",
    "SPLIT_FILES",
    "SPLITS_URL_ENV",
    "DownloadError",
    "DownloadResult",
    "NotPublicError",
    "ReleasedModel",
    "TransferProgress",
    "download_checkpoint",
    "download_checkpoints",
    "download_litemono",
    "download_pretrained",
    "download_resnet",
    "download_split",
    "download_splits",
    "fetch",
    "install_checkpoint_zip",
    "litemono_destination",
    "released_model",
    "resnet_destination",
    "resolve_checkpoint",
]
