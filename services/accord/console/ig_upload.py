"""A candidate policies folder for `policy simulate`, from the console: an uploaded .zip or
tar archive unpacked under limits into a private temporary folder, or a folder named by
path under the places the console may read candidates from.

An archive is refused, before anything is written, when it is larger than
MAX_ARCHIVE_BYTES, has more than MAX_MEMBERS members, would inflate past
MAX_INFLATED_BYTES (or more than MAX_RATIO times its own size: a zip bomb), or holds a
member that is not a plain file or folder (links, devices) or whose path is absolute or
climbs out (`..`). Then the folder must be a policies folder (agreements/, Rego rules
and the agreement schema) at its top or one level down, and its agreements must pass
the agreement schema; otherwise the reason is given and nothing runs.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final

from accord.core.credentials import private_dir

MAX_ARCHIVE_BYTES: Final = 2 * 1024 * 1024
MAX_MEMBERS: Final = 2000
MAX_INFLATED_BYTES: Final = 20 * 1024 * 1024
MAX_RATIO: Final = 100.0
MAX_PATH_CHARS: Final = 4096


class CandidateRefused(Exception):
    """The upload or folder cannot be simulated; `status` is the HTTP status to answer
    with (400 malformed, 413 too large, 422 not a valid policies folder), `problems`
    any per-file findings."""

    def __init__(self, status: int, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.problems = status, message, problems or []


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    is_dir: bool


def _safe_name(name: str) -> PurePosixPath:
    if not name or len(name) > MAX_PATH_CHARS or "\x00" in name or "\\" in name:
        raise CandidateRefused(400, "The archive holds a file with an unusable name.")
    path = PurePosixPath(name)
    if path.is_absolute() or any(part == ".." for part in path.parts):
        raise CandidateRefused(
            400, "The archive holds a file whose path leaves its folder (absolute or '..')."
        )
    return path


def check_members(members: list[Member], archive_size: int) -> None:
    """The limits every archive is checked against before anything is unpacked."""
    if len(members) > MAX_MEMBERS:
        raise CandidateRefused(
            413, f"The archive holds {len(members)} files; at most {MAX_MEMBERS} are accepted."
        )
    total = 0
    for member in members:
        _safe_name(member.name)
        total += max(0, member.size)
    if total > MAX_INFLATED_BYTES:
        raise CandidateRefused(
            413,
            f"The archive would unpack to {total // (1024 * 1024)} MB; at most "
            f"{MAX_INFLATED_BYTES // (1024 * 1024)} MB is accepted.",
        )
    if archive_size > 0 and total / archive_size > MAX_RATIO and total > 1024 * 1024:
        raise CandidateRefused(
            413, "The archive compresses far better than a policies folder can: refused."
        )


def _zip_members(archive: zipfile.ZipFile) -> list[Member]:
    members = []
    for info in archive.infolist():
        mode = info.external_attr >> 16
        if mode and stat.S_ISLNK(mode):
            raise CandidateRefused(
                400, "The archive holds a symbolic link; only files are accepted."
            )
        if info.flag_bits & 0x1:
            raise CandidateRefused(400, "The archive is encrypted; send it without a password.")
        members.append(Member(info.filename, info.file_size, info.is_dir()))
    return members


def _tar_members(archive: tarfile.TarFile) -> list[tuple[tarfile.TarInfo, Member]]:
    out = []
    for info in archive.getmembers():
        if not (info.isfile() or info.isdir()):
            raise CandidateRefused(
                400, "The archive holds a link or a device; only files and folders are accepted."
            )
        out.append((info, Member(info.name, info.size, info.isdir())))
    return out


def unpack(data: bytes, filename: str, into: Path) -> Path:
    """Unpack an uploaded .zip, .tar, .tar.gz or .tgz into the new folder `into`; the
    policies folder found in it."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise CandidateRefused(
            413,
            f"The file is {len(data) // 1024} KB; at most {MAX_ARCHIVE_BYTES // 1024} KB "
            "is accepted.",
        )
    if not data:
        raise CandidateRefused(400, "No file was sent, or it is empty. Choose a .zip or .tar file.")
    private_dir(into)
    lowered = filename.lower()
    if zipfile.is_zipfile(io.BytesIO(data)):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = _zip_members(archive)
                check_members(members, len(data))
                for info, member in zip(archive.infolist(), members, strict=True):
                    target = into.joinpath(*_safe_name(member.name).parts)
                    if member.is_dir:
                        private_dir(target)
                        continue
                    private_dir(target.parent)
                    with archive.open(info) as source, open(target, "xb") as sink:
                        copied = _copy_limited(source, sink, member.size)
                    if copied != member.size:
                        raise CandidateRefused(
                            400, "The archive is damaged (a file's size differs)."
                        )
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as exc:
            raise CandidateRefused(
                400, f"The .zip file cannot be read ({type(exc).__name__})."
            ) from None
    elif lowered.endswith((".tar", ".tar.gz", ".tgz")) or _is_tar(data):
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
                pairs = _tar_members(archive)
                check_members([m for _, m in pairs], len(data))
                for info, member in pairs:
                    target = into.joinpath(*_safe_name(member.name).parts)
                    if member.is_dir:
                        private_dir(target)
                        continue
                    private_dir(target.parent)
                    source = archive.extractfile(info)
                    if source is None:
                        raise CandidateRefused(400, "The archive is damaged.")
                    with source, open(target, "xb") as sink:
                        _copy_limited(source, sink, member.size)
        except (tarfile.TarError, EOFError, OSError) as exc:
            if isinstance(exc, FileExistsError):
                raise CandidateRefused(400, "The archive holds the same file twice.") from None
            raise CandidateRefused(
                400, f"The tar file cannot be read ({type(exc).__name__})."
            ) from None
    else:
        raise CandidateRefused(
            400,
            "The file is not a .zip or .tar archive. Archive the policies folder and send that.",
        )
    return find_policies_root(into)


def _is_tar(data: bytes) -> bool:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*"):
            return True
    except tarfile.TarError:
        return False


def _copy_limited(source, sink, size: int) -> int:
    copied = 0
    while True:
        chunk = source.read(65536)
        if not chunk:
            return copied
        copied += len(chunk)
        if copied > size or copied > MAX_INFLATED_BYTES:
            raise CandidateRefused(400, "The archive is damaged (a file is longer than it says).")
        sink.write(chunk)


def find_policies_root(folder: Path) -> Path:
    """The policies folder inside an unpacked archive: the folder itself, or its only
    sub-folder (an archive of `policies/`); refused with the reason otherwise."""
    from accord.governance.agreements import not_a_policies_folder

    if not_a_policies_folder(folder) is None:
        return folder
    children = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))]
    if len(children) == 1 and not_a_policies_folder(children[0]) is None:
        return children[0]
    reason = not_a_policies_folder(children[0] if len(children) == 1 else folder) or ""
    # The reason names the temporary folder; say it of the archive instead.
    cut = reason.find(" is not a policies folder: ")
    detail = reason[cut + len(" is not a policies folder: ") :] if cut >= 0 else reason
    raise CandidateRefused(
        422,
        f"The archive is not a policies folder: {detail}".rstrip(),
    )


def allowed_folder(given: str, roots: list[Path]) -> Path:
    """A candidate folder named by path, only under one of `roots` (after resolving
    links), and a policies folder."""
    from accord.governance.agreements import not_a_policies_folder

    text = given.strip()
    if not text or len(text) > MAX_PATH_CHARS or "\x00" in text:
        raise CandidateRefused(400, "Enter the path of a policies folder.")
    path = Path(text).expanduser()
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise CandidateRefused(422, f"There is no folder {text}.") from None
    if not any(resolved == root.resolve() or root.resolve() in resolved.parents for root in roots):
        shown = ", ".join(str(r) for r in roots)
        raise CandidateRefused(
            403 if resolved.exists() else 422,
            f"The console reads candidate folders only under {shown}.",
        )
    reason = not_a_policies_folder(resolved)
    if reason:
        raise CandidateRefused(422, reason)
    return resolved


def agreement_problems(folder: Path) -> list[str]:
    """The candidate's agreements' errors against the agreement schema (shape only: its
    meaning is what the simulation shows), each as file:line: path: problem with the
    file named relative to the folder."""
    from accord.governance.agreements import validate_dir

    try:
        _, problems = validate_dir(folder)
    except (OSError, ValueError) as exc:
        return [f"the agreement schema cannot be read: {type(exc).__name__}"]
    out = []
    for problem in problems:
        if not problem.is_error:
            continue
        text = str(problem)
        prefix = str(folder) + os.sep
        out.append(text[len(prefix) :] if text.startswith(prefix) else text)
    return out


def workspace(parent: Path) -> Path:
    """A fresh private folder for one upload under `parent` (0700)."""
    private_dir(parent)
    return Path(tempfile.mkdtemp(prefix="candidate-", dir=parent))


def discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
