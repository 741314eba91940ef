"""Where binlog files live: a directory (``-b DIR``) or, for in-process restarts of a server
given no directory, memory.

Both hold files named by their sequence number. A directory is locked the way beanstalkd
locks it (an ``fcntl`` write lock on ``DIR/lock``, held while the server runs), so that a
real beanstalkd and a fake never write the same binlog at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from typing import Protocol

from fakebeanstalk.errors import BinlogError

__all__ = ["DirectoryStorage", "MemoryStorage", "Storage"]

# beanstalkd reads the number with strtol and wants nothing after it: "binlog." is file 0.
_NAME = re.compile(r"binlog\.(?:[ \t\n\v\f\r]*([+-]?[0-9]+))?")
_INT_MAX = 2**31 - 1


class Storage(Protocol):
    """The files of one binlog, by sequence number."""

    def lock(self) -> None:
        """Take the binlog for this server (raises :class:`BinlogError` if impossible)."""
        ...

    def sequence_numbers(self) -> list[int]:
        """The numbers of the existing ``binlog.N`` files, in no particular order."""
        ...

    def read(self, seq: int) -> bytes | None:
        """The whole content of a file, or None if it cannot be opened."""
        ...

    def create(self, seq: int, header: bytes) -> bool:
        """Create a file for writing, holding ``header``; False if that failed."""
        ...

    def append(self, seq: int, data: bytes) -> None:
        """Write at the end of a file open for writing (raises OSError on failure)."""
        ...

    def sync(self, seq: int) -> None:
        """Flush a file open for writing to stable storage."""
        ...

    def close_file(self, seq: int) -> None:
        """Stop writing a file."""
        ...

    def remove(self, seq: int) -> None:
        """Delete a file."""
        ...

    def close(self) -> None:
        """Close every file and release the lock (what the process's death does)."""
        ...


class DirectoryStorage:
    """Binlog files in a directory, as beanstalkd writes them."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        """Files go in ``directory``, which must exist (as beanstalkd requires)."""
        self.directory = os.fspath(directory)
        self._fds: dict[int, int] = {}
        self._lock_fd: int | None = None

    def path(self, seq: int) -> str:
        """The path of file ``seq``."""
        return os.path.join(self.directory, f"binlog.{seq}")

    def lock(self) -> None:
        """beanstalkd's waldirlock(): a write lock on ``DIR/lock``, never released while up."""
        try:
            fd = os.open(os.path.join(self.directory, "lock"), os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError as exc:
            raise BinlogError(f"failed to lock wal dir {self.directory}: {exc}") from exc
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise BinlogError(f"failed to lock wal dir {self.directory}: {exc}") from exc
        self._lock_fd = fd

    def sequence_numbers(self) -> list[int]:
        """The numbers of the ``binlog.N`` files of the directory."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        numbers = []
        for name in names:
            match = _NAME.fullmatch(name)
            if match is not None:
                number = int(match.group(1) or 0)
                numbers.append(max(-_INT_MAX - 1, min(_INT_MAX, number)))
        return numbers

    def read(self, seq: int) -> bytes | None:
        """The file's bytes, or None when it cannot be opened."""
        try:
            with open(self.path(seq), "rb") as file:
                return file.read()
        except OSError:
            return None

    def create(self, seq: int, header: bytes) -> bool:
        """Open a new file write-only with mode 0400, as beanstalkd does, and write the
        version header."""
        try:
            fd = os.open(self.path(seq), os.O_WRONLY | os.O_CREAT, 0o400)
        except OSError:
            return False
        try:
            os.write(fd, header)
        except OSError:
            os.close(fd)
            return False
        self._fds[seq] = fd
        return True

    def append(self, seq: int, data: bytes) -> None:
        """Write ``data`` at the file's current end."""
        view = memoryview(data)
        while view:
            view = view[os.write(self._fds[seq], view) :]

    def sync(self, seq: int) -> None:
        """fsync the file."""
        with contextlib.suppress(OSError, KeyError):
            os.fsync(self._fds[seq])

    def close_file(self, seq: int) -> None:
        """Close the file's descriptor."""
        fd = self._fds.pop(seq, None)
        if fd is not None:
            os.close(fd)

    def remove(self, seq: int) -> None:
        """Unlink the file (an open descriptor of it is closed first)."""
        self.close_file(seq)
        with contextlib.suppress(OSError):
            os.unlink(self.path(seq))

    def close(self) -> None:
        """Close every descriptor and the lock file."""
        for seq in list(self._fds):
            self.close_file(seq)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


class MemoryStorage:
    """Binlog files kept in memory, surviving in-process restarts of one server."""

    def __init__(self) -> None:
        """No file."""
        self.files: dict[int, bytearray] = {}

    def lock(self) -> None:
        """Nothing to lock."""

    def sequence_numbers(self) -> list[int]:
        """The numbers of the files."""
        return list(self.files)

    def read(self, seq: int) -> bytes | None:
        """A copy of the file's bytes."""
        data = self.files.get(seq)
        return None if data is None else bytes(data)

    def create(self, seq: int, header: bytes) -> bool:
        """A new file holding ``header``."""
        self.files[seq] = bytearray(header)
        return True

    def append(self, seq: int, data: bytes) -> None:
        """Extend the file."""
        self.files[seq] += data

    def sync(self, seq: int) -> None:
        """Nothing to flush."""

    def close_file(self, seq: int) -> None:
        """Nothing to close."""

    def remove(self, seq: int) -> None:
        """Forget the file."""
        self.files.pop(seq, None)

    def close(self) -> None:
        """Nothing to close: the files stay for the next start."""

    def clear(self) -> None:
        """Forget every file."""
        self.files.clear()
