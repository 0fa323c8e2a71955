"""Atomic, durable file writes: a reader sees the old file or the whole new one, never half.

    with atomic_write(path) as f:
        torch.save(obj, f)          # or img.save(f, format="PNG"), np.save(f, arr), f.write(b)

The one way the project writes a file that something else reads back (checkpoints, colorized
outputs, prepared arrays, manifests); text (tables, reports, JSON) through ``write_text``, or
``atomic_text`` for a text file written piece by piece (a csv.writer's).
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TextIO


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Yield a binary file to write; on success it replaces ``path`` in one step.

    The data goes to a hidden temp file beside ``path`` (same file system, so the rename is
    atomic), is fsynced, renamed onto ``path``, and the folder is fsynced so that the rename
    itself survives a power cut. On any error the temp file is removed and ``path`` is left
    as it was. The temp file is created with mode 0666 less the umask, as any file a program
    writes (mkstemp would make every output 0600 whatever the umask says); its name carries
    the pid and a random part, so concurrent writers never share one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename durable; not possible on every platform or file system
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


@contextmanager
def atomic_text(path: str | os.PathLike) -> Iterator[TextIO]:
    """:func:`atomic_write` for text: yields a UTF-8 text file that writes newlines as given
    (``newline=""``, as the csv module wants), e.g. ``csv.writer(f)``."""
    with atomic_write(path) as raw:
        f = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        try:
            yield f
            f.flush()
        finally:
            f.detach()  # atomic_write closes the file itself


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, its folders made as needed: a report,
    table or JSON that a killed run or a full disk leaves whole or as it was."""
    with atomic_text(path) as f:
        f.write(text)
    return Path(path)


def check_output_folder(out_dir: str | os.PathLike) -> Path:
    """``out_dir`` as a Path, refused up front if it or a folder above it is an existing file
    (else the first write would fail mid-run with a bare FileExistsError)."""
    out_root = Path(out_dir)
    for p in (out_root, *out_root.parents):
        if p.exists():
            if not p.is_dir():
                where = "is" if p == out_root else f"lies under '{p}', which is"
                raise NotADirectoryError(
                    f"output folder '{out_root}' {where} an existing file, not a folder"
                )
            break
    return out_root


def check_writable_folder(out_dir: str | os.PathLike) -> Path:
    """:func:`check_output_folder`, and refused too if no file could be made there: probes the
    folder, or the nearest existing folder above it, with a temporary file (nothing is left).
    For CLIs, before any work (a model load, a scoring run) is spent on results that could
    not be written."""
    import tempfile

    path = check_output_folder(out_dir)
    probe = next(p for p in (path, *path.parents) if p.exists())
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise OSError(f"cannot write to output folder '{out_dir}': {e.strerror or e}") from None
    return path
