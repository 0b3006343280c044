"""Checks on what arrived: checkpoint zips, weight files, hashes and split lists.

Each check raises `RejectedContent` with the reason only; callers add which download it was.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import stat
import zipfile
import zlib
from pathlib import Path

from .transport import DownloadError

MAX_UNPACKED_BYTES = 4 << 30  # far above any released checkpoint; stops zip bombs
MAX_SPLIT_BYTES = 64 << 20
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")  # torch.hub's convention: resnet18-f37072fd.pth
_SPLIT_LINE = re.compile(r"-?\d+")


class RejectedContent(DownloadError):
    """A downloaded or given file failed a check."""


# ---------------------------------------------------------------- zips


def is_os_metadata(name: str) -> bool:
    """Finder's resource forks and folder settings, which archivers on macOS add."""
    return name.startswith("__MACOSX/") or name.rsplit("/", 1)[-1] == ".DS_Store"


def _member_parts(member: zipfile.ZipInfo) -> tuple[str, ...]:
    name = member.filename
    if name.startswith("/") or "\\" in name or re.match(r"[A-Za-z]:", name) or "\x00" in name:
        raise RejectedContent(f"member {name!r} has an absolute or non-portable path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise RejectedContent(f"member {name!r} points outside its folder ('..')")
    if stat.S_ISLNK(member.external_attr >> 16):
        raise RejectedContent(f"member {name!r} is a symbolic link")
    if not parts:
        raise RejectedContent(f"member {name!r} has an empty path")
    return parts


def unpack_checkpoint_zip(zip_path: Path, dest: Path, required: tuple[str, ...]) -> Path:
    """Check a checkpoint zip and unpack its one top folder into `dest`; return `dest/<top folder>`.

    The zip must be whole (every CRC matches), hold exactly one top folder, contain each
    file of `required` directly in it, and have no member that is absolute, climbs out with
    `..`, or is a link.
    """
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = [(m, _member_parts(m)) for m in archive.infolist() if not is_os_metadata(m.filename)]
            tops = sorted({parts[0] for _, parts in members})
            loose = [m.filename for m, parts in members if len(parts) == 1 and not m.is_dir()]
            if len(tops) != 1 or loose:
                found = ", ".join(tops[:5]) or "nothing"
                raise RejectedContent(f"it must hold exactly one folder with the module files, but holds {found}")
            files = [(m, parts) for m, parts in members if not m.is_dir()]
            inside = {"/".join(parts[1:]) for _, parts in files}
            missing = [name for name in required if name not in inside]
            if missing:
                raise RejectedContent(f"its folder {tops[0]}/ lacks {', '.join(missing)}")
            if sum(m.file_size for m, _ in files) > MAX_UNPACKED_BYTES:
                raise RejectedContent(f"it would unpack to more than {MAX_UNPACKED_BYTES >> 30} GiB")
            broken = archive.testzip()
            if broken is not None:
                raise RejectedContent(f"member {broken} is corrupt (its checksum does not match)")
            for member, parts in files:
                target = dest.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as err:
        raise RejectedContent(f"it is not a whole zip archive ({type(err).__name__}: {err})") from None
    return dest / tops[0]


# ---------------------------------------------------------------- weight files


def load_weights_only(path: Path) -> object:
    """`torch.load(path, weights_only=True)`; a file that needs code or objects to load is refused."""
    import torch  # deferred: the CLI imports this module at start-up

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line), lines[0] if lines else "")
        if "GLOBAL" in detail or "global" in detail.lower():
            raise RejectedContent(
                f"{path.name} contains pickled code or objects ({detail}), which are refused for safety"
            ) from None
        raise RejectedContent(
            f"{path.name} is not a PyTorch weights file that loads safely ({type(err).__name__}: {detail or 'no detail'})"
        ) from None


def check_module_state(path: Path) -> dict:
    """A checkpoint module file: a non-empty mapping of names to tensors (plus `height`/`width` numbers)."""
    import torch  # deferred: the CLI imports this module at start-up

    state = load_weights_only(path)
    if not isinstance(state, dict) or not state or not all(isinstance(k, str) for k in state):
        raise RejectedContent(f"{path.name} does not hold a state dict (a mapping of parameter names to tensors)")
    odd = [k for k, v in state.items() if not isinstance(v, (torch.Tensor, int, float))]
    if odd:
        raise RejectedContent(f"{path.name}: entries {odd[:5]} are neither tensors nor numbers")
    return state


def check_tensor_dict(state: object, what: str) -> dict:
    """`state` must be a non-empty mapping of names to tensors."""
    import torch  # deferred: the CLI imports this module at start-up

    if (
        not isinstance(state, dict)
        or not state
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise RejectedContent(f"{what} is not a mapping of parameter names to tensors")
    return state


def check_hash_in_name(path: Path, file_name: str) -> None:
    """When `file_name` carries a SHA-256 prefix (`name-<hex>.pth`), the file's digest must start with it."""
    match = _HASH_IN_NAME.search(file_name)
    if match is None:
        return
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(match.group(1)):
        raise RejectedContent(
            f"its SHA-256 ({digest.hexdigest()[:16]}...) does not start with {match.group(1)} as the name "
            f"{file_name} promises; the file is damaged or not the published one"
        )


# ---------------------------------------------------------------- split lists


def check_split_text(path: Path, file_name: str) -> int:
    """A split list: UTF-8 lines `<folder> <frame index> [l|r]`. Returns the number of lines."""
    size = path.stat().st_size
    if size > MAX_SPLIT_BYTES:
        raise RejectedContent(f"{file_name} is {size} bytes, far more than a split list")
    data = path.read_bytes()
    if b"\x00" in data:
        raise RejectedContent(f"{file_name} is binary, not a text list of frames")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RejectedContent(f"{file_name} is not UTF-8 text") from None
    count = 0
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        folder = fields[0]
        plausible = (
            len(fields) in (2, 3)
            and _SPLIT_LINE.fullmatch(fields[1]) is not None
            and (len(fields) == 2 or fields[2] in ("l", "r"))
            and not folder.startswith(("/", "<"))
            and ".." not in folder.split("/")
        )
        if not plausible:
            raise RejectedContent(
                f"{file_name} line {number} ({line[:80]!r}) is not of the form '<folder> <frame index> [l|r]'"
            )
        count += 1
    if count == 0:
        raise RejectedContent(f"{file_name} is empty")
    return count
