"""Atomic file writes: a reader sees the old file or the new one, never half of either.

The recipe (the one databases use):

1. write to a temp file in the target's folder (the same filesystem, so step 3 is one
   atomic rename, not a copy);
2. flush and ``os.fsync`` it, so its bytes are on disk before any name points at them;
3. ``os.replace`` it onto the target (atomic on POSIX and Windows);
4. ``fsync`` the folder, so the rename itself survives a power cut.

A process killed before step 3 leaves the target untouched and a temp file behind. Temp
files are named ``.{target}.tmp-{host}-{pid}-{random}``; each write to a folder first
removes that folder's *orphans*: temp files of ours whose writer is gone. A temp file is an
orphan when

- it was made on this machine (``host``, a hash of the host name, matches) and process
  ``pid`` is no longer running, or
- it has not been modified for ``ORPHAN_AGE`` seconds (an hour), whoever made it: no
  write takes that long without writing, and this also covers folders shared by several
  machines, reused pids and Windows (where liveness is not checked).

A live writer's temp file is never touched, so two processes may save into one folder at
once (the last ``os.replace`` wins, and each file is whole).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator
from typing import BinaryIO

__all__ = ["atomic_write", "remove_orphans", "ORPHAN_AGE"]

ORPHAN_AGE = 3600.0  # seconds without a write after which any temp file of ours is an orphan

_HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]
_TEMP = re.compile(r"^\..*\.tmp-(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]{1,10})-[0-9a-f]{8}$", re.S)


def temp_name(name: str) -> str:
    """``.{name}.tmp-{host}-{pid}-{random}``, with a long ``name`` shortened to a hash
    so the temp name stays under the 255-byte limit of most filesystems."""
    if len(os.fsencode(name)) > 120:
        name = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    return f".{name}.tmp-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (True when it cannot be told)."""
    if os.name == "nt":  # os.kill(pid, 0) would *terminate* the process on Windows
        return True
    if pid <= 0:
        return True  # never one of ours; kill(0, 0) would ask about our own process group
    try:
        os.kill(pid, 0)  # signal 0: no signal is sent, only the existence check is made
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by another user
    except (OverflowError, OSError):
        return False  # not a valid pid on this system
    return True


def remove_orphans(folder: str | os.PathLike, max_age: float = ORPHAN_AGE) -> list[str]:
    """Delete the orphaned temp files in ``folder`` (see the module docstring); returns
    their paths. Best effort: a file that cannot be removed is left, silently."""
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP.match(entry.name)
        if m is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
            pid = int(m["pid"])
            dead = m["host"] == _HOST and pid != os.getpid() and not _pid_alive(pid)
            if dead or age > max_age:
                os.unlink(entry.path)
                removed.append(entry.path)
        except OSError:  # vanished meanwhile (another saver cleaned it) or not ours to delete
            continue
    return removed


def fsync_folder(folder: str) -> None:
    """Make a rename inside ``folder`` durable (POSIX; Windows cannot open a folder)."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:  # some filesystems (certain network mounts) do not sync folders
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """``with atomic_write(path) as f: f.write(...)`` replaces ``path`` atomically.

    If the block raises (KeyboardInterrupt included), the temp file is removed and
    ``path`` is left as it was. A symlink at ``path`` is followed: its target is replaced.
    """
    path = os.fspath(path)
    if os.path.islink(path):
        path = os.path.realpath(path)
    folder, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, "cannot save: no such folder", folder)
    remove_orphans(folder)
    tmp = os.path.join(folder, temp_name(name))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)  # 0o666 & ~umask: the permissions open() would give
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # step 2: the data is on disk
        os.replace(tmp, path)  # step 3: the name now points at the complete file
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_folder(folder)  # step 4: the rename is on disk
