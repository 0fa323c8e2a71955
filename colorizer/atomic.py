"""Atomic, durable file writes: a reader sees the old file or the whole new one, never half.

    with atomic_write(path) as f:
        torch.save(obj, f)          # or img.save(f, format="PNG"), np.save(f, arr), f.write(b)

The one way the project writes a file that something else reads back (checkpoints, colorized
outputs, prepared arrays, manifests).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


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
