"""Crash-safe file replacement: ``atomic_write(path, write)``, used by every checkpoint save.

Protocol
--------
1. Remove stale temporaries of ``path``: files named ``.<name>.<pid>.<8 hex>.tmp`` in the same folder whose
   writer process ``pid`` is no longer alive (a writer killed between steps 3 and 4).
2. Write the data into an *unnamed* file in the target folder (Linux ``O_TMPFILE``) and fsync it.  A crash
   here leaves nothing behind: the kernel frees an unnamed file when its last descriptor closes.
3. Give it the temporary name ``.<name>.<pid>.<8 hex>.tmp`` (``linkat`` of ``/proc/self/fd/N``).
4. ``os.replace`` it over ``path``, then fsync the folder so the rename itself is durable.

Where ``O_TMPFILE`` or ``/proc`` is missing (other systems, some file systems), step 2 writes straight into
the named temporary instead; a crash then leaves that file, and step 1 of the next save of the same
``path`` removes it.  A crash at any point leaves the previous ``path`` intact.

Liveness is checked with ``os.kill(pid, 0)`` in this machine's PID namespace: a writer on another host or
in another container sharing the folder must not save to the same ``path`` at the same time.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets

__all__ = ["atomic_write", "remove_stale_temps", "temp_name"]

_UNNAMED_UNSUPPORTED = {errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL}  # file system or kernel without O_TMPFILE


def temp_name(name: str, pid: int | None = None) -> str:
    """A fresh temporary name for target file ``name`` written by process ``pid`` (default: this one)."""
    return f".{name}.{os.getpid() if pid is None else pid}.{secrets.token_hex(4)}.tmp"


def _temp_pattern(name):
    return re.compile(re.escape(f".{name}.") + r"(\d+)\.[0-9a-f]{8}\.tmp")


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists; unknowable outside POSIX, where every writer counts as alive."""
    if os.name != "posix":
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def remove_stale_temps(folder, name: str) -> list[str]:
    """Delete the temporaries of target ``name`` in ``folder`` whose writer has died; return their names."""
    pattern, removed = _temp_pattern(name), []
    try:
        entries = os.listdir(folder)
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        with contextlib.suppress(FileNotFoundError, PermissionError, IsADirectoryError):
            os.unlink(os.path.join(folder, entry))
            removed.append(entry)
    return removed


def _open_unnamed(dir_fd):
    """An ``O_TMPFILE`` descriptor in the folder ``dir_fd``, or None where unnamed files are unsupported."""
    if not hasattr(os, "O_TMPFILE") or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(".", os.O_TMPFILE | os.O_WRONLY, 0o600, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in _UNNAMED_UNSUPPORTED:
            return None
        raise


def _create_named(folder, name):
    """Create and open a fresh ``.<name>.<pid>.<hex>.tmp`` in ``folder``; return (fd, its path)."""
    while True:
        tmp = os.path.join(folder, temp_name(name))
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600), tmp
        except FileExistsError:
            continue


def _link_unnamed(fd, dir_fd, folder, name):
    """Give the unnamed file ``fd`` a fresh temporary name in ``folder``; return its path."""
    while True:
        tmp_base = temp_name(name)
        try:  # dst_dir_fd makes Python call linkat with AT_SYMLINK_FOLLOW, which the /proc link needs
            os.link(f"/proc/self/fd/{fd}", tmp_base, dst_dir_fd=dir_fd)
        except FileExistsError:
            continue
        return os.path.join(folder, tmp_base)


def _target_mode(path):
    """Keep the permission bits of the file being replaced; new files get 0o644."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        return 0o644


def _fsync_folder(dir_fd):
    """Make the rename durable by fsyncing the folder (skipped where folders cannot be opened or synced)."""
    if dir_fd is not None:
        with contextlib.suppress(OSError):  # not possible on every platform
            os.fsync(dir_fd)


def _write_and_replace(path, folder, name, dir_fd, write):
    """Steps 2-4 of the protocol; on any error remove the named temporary, if any, and re-raise."""
    fd = _open_unnamed(dir_fd) if dir_fd is not None else None
    tmp = None
    if fd is None:
        fd, tmp = _create_named(folder, name)
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            write(f)
        if tmp is None:
            os.fchmod(fd, _target_mode(path))
        else:
            os.chmod(tmp, _target_mode(path))
        os.fsync(fd)
        if tmp is None:
            tmp = _link_unnamed(fd, dir_fd, folder, name)
        os.replace(tmp, path)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    finally:
        os.close(fd)


def atomic_write(path, write) -> None:
    """Replace ``path`` with what ``write(file)`` writes to a binary file object, crash-safely.

    Args:
        path: the file to write or replace; its folder must exist.
        write: called once with a writable, seekable binary file object; may raise (nothing is replaced).

    Raises:
        whatever ``write`` raises, and ``OSError`` from the file system; ``path`` is then unchanged and no
        temporary file is left.
    """
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    remove_stale_temps(folder, name)
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        dir_fd = None
    try:
        _write_and_replace(path, folder, name, dir_fd, write)
        _fsync_folder(dir_fd)
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
