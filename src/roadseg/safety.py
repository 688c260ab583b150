"""What a command may write: never a path that is, contains or lies inside one of its inputs (dataset,
model, config, input frames), never two outputs under one name, never an existing file without
--overwrite, and never a folder in use by another run. Every check runs before anything is written
and fails with one line naming both paths. Paths are compared as the filesystem sees them: symlinks,
`..`, and case on case-insensitive filesystems all resolve to the same file.

Usage::

    refuse_overlap(out_dir, {"dataset": data_dir, "config": cfg_file}, "--out")
    plan_files([out / "a.png", out / "a_color.png"], inputs=[frame], overwrite=False)
    with RunLock(run_dir): ...        # a second process using run_dir is refused
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .errors import InputError

LOCK_NAME = ".roadseg.lock"


def resolved(path: str | Path) -> Path:
    return Path(path).expanduser().resolve(strict=False)


def _same(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)  # hard links, case-insensitive filesystems
    except OSError:
        return False


def relation(path: str | Path, other: str | Path) -> str | None:
    """'is', 'lies inside' or 'contains' when `path` overlaps `other`, else None."""
    a, b = resolved(path), resolved(other)
    if _same(a, b):
        return "is"
    if any(_same(p, b) for p in a.parents):
        return "lies inside"
    if any(_same(p, a) for p in b.parents):
        return "contains"
    return None


def refuse_overlap(output: str | Path, inputs: Mapping[str, str | Path | None], flag: str = "--out") -> None:
    """Refuse an output path that is, contains or lies inside any input; `inputs` maps what each input
    is ('dataset', 'model', ...) to its path."""
    for what, path in inputs.items():
        if path is None:
            continue
        how = relation(output, path)
        if how is not None:
            raise InputError(output, f"{how} the {what} {path}",
                             f"choose a {flag} outside the {what}; roadseg never writes into its inputs")


def refuse_deleting_here(folder: str | Path, flag: str = "--out") -> None:
    """Refuse to delete a folder that is or contains the working folder."""
    how = relation(folder, Path.cwd())
    if how in ("is", "contains"):
        raise InputError(folder, f"{how} the working folder; --overwrite would delete it",
                         f"choose a {flag} folder of its own")


def plan_files(outputs: Iterable[Path], inputs: Iterable[Path] = (), overwrite: bool = False,
               sources: Sequence[Path] | None = None) -> list[Path]:
    """Check every file a command will write before it writes any: no two outputs under one name
    (`sources`, parallel to `outputs`, names the input each comes from), none that is an input file,
    none that exists unless `overwrite`. Returns the outputs."""
    outputs = [Path(o) for o in outputs]
    seen: dict[Path, int] = {}
    for i, out in enumerate(outputs):
        key = Path(os.path.normcase(resolved(out)))
        if key in seen:
            whose = f" (from {sources[seen[key]]} and {sources[i]})" if sources else ""
            raise InputError(out, f"would be written twice{whose}",
                             "rename one of the inputs, or write them into separate --out folders")
        seen[key] = i
    ids = {}
    for path in inputs:
        try:
            st = os.stat(path)
            ids[(st.st_dev, st.st_ino)] = path
        except OSError:
            continue
    existing = []
    for out in outputs:
        try:
            st = os.stat(out)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in ids:
            raise InputError(out, f"is the input {ids[(st.st_dev, st.st_ino)]}; writing it would destroy it",
                             "choose an --out folder that holds none of the inputs")
        existing.append(out)
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more outputs)" if len(existing) > 1 else ""
        raise InputError(existing[0], f"already exists{more}", "pass --overwrite to replace, or choose another output")
    return outputs


def plan_output(output: str | Path, inputs: Mapping[str, str | Path | None], overwrite: bool = False,
                flag: str = "--out", file: str | None = None) -> None:
    """One output (a file, or a folder holding `file`): `refuse_overlap` with the inputs, then
    `plan_files` for the file it writes."""
    refuse_overlap(output, inputs, flag)
    plan_files([Path(output) / file if file else Path(output)], overwrite=overwrite)


class RunLock:
    """An exclusive lock on a run folder (RUN/.roadseg.lock, flock) for as long as a run uses it; a
    second run into the same folder is refused in one line. The lock file goes when the run ends."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock
            return self
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise InputError(self.folder, f"cannot be created or written ({e.strerror or e})",
                             "choose a writable --out folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise InputError(self.folder, "is in use by another roadseg run",
                             "wait for it to finish, or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            Path(self.path).unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None


def is_empty(folder: Path) -> bool:
    """Whether a folder holds nothing but (possibly) a run lock."""
    return not any(p.name != LOCK_NAME for p in folder.iterdir())
