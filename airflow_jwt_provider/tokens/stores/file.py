"""``token_cache: file``: sealed tokens in a directory that every process of one machine shares.

For a machine that runs many task processes (a Celery worker, a LocalExecutor host, the
triggerer next to them) and no Redis. Each container of a compose stack has its own file
system, so there it shares tokens within the container only; use ``redis`` across machines.

* **Owner only.** The directory is created ``0700`` and refused (the cache then steps aside, with
  a warning) if another user owns it or can reach into it; entries and lock files are ``0600``.
  Entries are sealed anyway (:mod:`airflow_jwt_provider.tokens.sealing`); the permissions keep
  other users from even counting them.
* **Atomic writes.** An entry is written to a temporary file in the same directory and renamed
  over the old one, so a reader sees a whole entry or none.
* **Locks.** One ``<name>.lock`` file per entry, locked with ``flock``: the kernel releases it
  when its holder exits or is killed, so a dead fetcher never blocks the others. A lock is
  taken only once the locked file is checked to be the one the path names (pruning may remove
  lock files).
* **Expiry.** Each entry starts with its expiry time (the token's refresh time; not secret): a
  reader ignores and removes an expired entry, and every writer prunes expired entries and
  unused lock files at most once a minute.
* **Marks.** ``<name>.mark`` files hold the small values of the store's mark capability (what an
  event trigger already fired for, :mod:`airflow_jwt_provider.tokens.fired_marks`), with the same
  header, atomic writes and expiry as entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import stat
import struct
import threading
import time
from pathlib import Path

from airflow_jwt_provider.connection.settings import TokenCacheSettings

#: ``b"JWTF"``, then the expiry as a big-endian float of Unix seconds, then the sealed entry.
_HEADER = struct.Struct(">4sd")
_MAGIC = b"JWTF"
_ENTRY_SUFFIX = ".token"
#: Marks (:meth:`FileTokenStore.put_mark`): small values beside the tokens, same header, same expiry rule.
_MARK_SUFFIX = ".mark"
_EXPIRING_SUFFIXES = (_ENTRY_SUFFIX, _MARK_SUFFIX)
_LOCK_SUFFIX = ".lock"
#: Seconds between two prunes of one process; lock files unused for this long may be removed.
PRUNE_INTERVAL = 60.0
STALE_LOCK_AGE = 3600.0
_POLL = 0.02


class FileTokenStoreError(OSError):
    """The directory cannot be used safely (owned by another user, reachable by others, not a directory)."""


class FileLock:
    """A held ``flock`` on a lock file; the kernel frees it if the process dies."""

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def extend(self, ttl: float) -> bool:
        """Nothing to renew: the kernel holds an ``flock`` as long as its holder lives."""
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class FileTokenStore:
    """A :class:`~airflow_jwt_provider.tokens.stores.base.TokenStore` in a directory; see the module docstring.

    :param directory: the folder (created ``0700`` if missing).
    :param lock_wait: how long a 401's compare-and-delete waits for the entry's lock.
    """

    def __init__(self, directory: Path, *, lock_wait: float = 10.0) -> None:
        self.directory = directory
        self.lock_wait = lock_wait
        self.description = f"directory {str(directory)!r}"
        self._next_prune = 0.0
        self._prune_lock = threading.Lock()
        self._check_directory()

    def __repr__(self) -> str:
        return f"FileTokenStore({self.description})"

    @staticmethod
    def directory_for(configured: str | None) -> Path:
        """``token_cache_dir`` as a path; by default ``$AIRFLOW_HOME/jwt_bearer_token_cache``."""
        if configured:
            return Path(configured).expanduser()
        home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
        return Path(home).expanduser() / "jwt_bearer_token_cache"

    def _check_directory(self) -> None:
        with contextlib.suppress(FileExistsError):
            self.directory.mkdir(mode=0o700, parents=True)
        info = os.lstat(self.directory)
        if not stat.S_ISDIR(info.st_mode):
            raise FileTokenStoreError(f"{self.description} is not a directory (a symbolic link or a file)")
        if info.st_uid != os.geteuid():
            raise FileTokenStoreError(
                f"{self.description} belongs to user id {info.st_uid}, not to this process's user "
                f"({os.geteuid()}); give each user its own token_cache_dir"
            )
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(self.directory, 0o700)  # ours: make it owner-only rather than refuse it

    # -- entries ------------------------------------------------------------------------------------

    def _path(self, name: str, suffix: str) -> Path:
        if not name or not all(c in "0123456789abcdef" for c in name):
            raise ValueError("entry names are hex digests")
        return self.directory / f"{name}{suffix}"

    def get(self, name: str) -> bytes | None:
        return self._read(self._path(name, _ENTRY_SUFFIX))

    def put(self, name: str, value: bytes, ttl: float) -> None:
        self._write(name, _ENTRY_SUFFIX, value, ttl)

    def get_mark(self, name: str) -> bytes | None:
        """The mark of ``name`` (:class:`~airflow_jwt_provider.tokens.stores.base.MarkStore`), or ``None``."""
        return self._read(self._path(name, _MARK_SUFFIX))

    def put_mark(self, name: str, value: bytes, ttl: float) -> None:
        """Keep the mark ``value`` under ``name`` for ``ttl`` seconds (a file beside the tokens, pruned alike)."""
        self._write(name, _MARK_SUFFIX, value, ttl)

    def _read(self, path: Path) -> bytes | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as file:
            data = file.read()
            inode = os.fstat(file.fileno()).st_ino
        if len(data) < _HEADER.size or data[: len(_MAGIC)] != _MAGIC:
            return data  # not an entry: the seal reports it as corrupt, and the next put replaces it
        _, expires = _HEADER.unpack_from(data)
        if time.time() >= expires:
            with contextlib.suppress(OSError):
                if os.stat(path, follow_symlinks=False).st_ino == inode:  # not a fresh entry renamed in meanwhile
                    os.unlink(path)
            return None
        return data[_HEADER.size :]

    def _write(self, name: str, suffix: str, value: bytes, ttl: float) -> None:
        path = self._path(name, suffix)
        temporary = self.directory / f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(_HEADER.pack(_MAGIC, time.time() + ttl) + value)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        self._prune_now_and_then()

    def compare_and_delete(self, name: str, prefix: bytes) -> bool:
        """Under the entry's lock (waiting up to ``lock_wait``): a fetcher holding it replaces the entry anyway."""
        deadline = time.monotonic() + self.lock_wait
        while (lock := self.try_lock(name, self.lock_wait)) is None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)
        try:
            path = self._path(name, _ENTRY_SUFFIX)
            try:
                with open(path, "rb") as file:
                    data = file.read()
            except FileNotFoundError:
                return False
            if not data[_HEADER.size :].startswith(prefix):
                return False
            os.unlink(path)
            return True
        finally:
            lock.release()

    # -- locks --------------------------------------------------------------------------------------

    def try_lock(self, name: str, ttl: float) -> FileLock | None:
        """``flock`` the entry's lock file without waiting (``ttl`` is the kernel's business: none needed)."""
        path = self._path(name, _LOCK_SUFFIX)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        # A pruner may have removed the file between our open and our lock: then the lock we hold
        # is on a file nobody else will open. Hold it only if the path still names our file.
        try:
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            FileLock(fd).release()
            return None
        os.utime(fd)  # "recently used", for the pruner
        return FileLock(fd)

    # -- pruning ------------------------------------------------------------------------------------

    def _prune_now_and_then(self) -> None:
        now = time.monotonic()
        if now < self._next_prune or not self._prune_lock.acquire(blocking=False):
            return
        try:
            self._next_prune = now + PRUNE_INTERVAL
            self.prune()
        except OSError:
            pass  # pruning is housekeeping: the next writer tries again
        finally:
            self._prune_lock.release()

    def prune(self) -> int:
        """Remove expired entries and marks, and lock files unused for an hour whose entry is gone; how many went."""
        removed = 0
        now = time.time()
        paths = sorted(self.directory.iterdir(), key=lambda p: p.suffix not in _EXPIRING_SUFFIXES)  # entries first
        for path in paths:
            if path.suffix in _EXPIRING_SUFFIXES:
                try:
                    with open(path, "rb") as file:
                        header = file.read(_HEADER.size)
                except FileNotFoundError:
                    continue
                if len(header) == _HEADER.size and _HEADER.unpack(header)[1] > now:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
            elif path.suffix == _LOCK_SUFFIX:
                name = path.name[: -len(_LOCK_SUFFIX)]
                try:
                    if now - path.stat().st_mtime < STALE_LOCK_AGE or self._path(name, _ENTRY_SUFFIX).exists():
                        continue
                except (FileNotFoundError, ValueError):
                    continue
                lock = self.try_lock(name, 0)
                if lock is not None:  # unlinked while held: a late opener's inode check fails, it retries
                    try:
                        path.unlink()
                        removed += 1
                    finally:
                        lock.release()
            elif path.name.startswith(".") and path.name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    if now - path.stat().st_mtime > STALE_LOCK_AGE:
                        path.unlink()  # left by a writer killed between create and rename
                        removed += 1
        return removed


class FileTokenStoreType:
    """Registration of ``token_cache: file`` (the ``airflow_jwt_provider.token_stores`` entry point)."""

    name = "file"

    def open(self, settings: TokenCacheSettings) -> FileTokenStore:
        return FileTokenStore(FileTokenStore.directory_for(settings.directory), lock_wait=settings.wait)

    def describe(self, settings: TokenCacheSettings) -> str:
        return f"token_cache_dir {settings.directory or '(default)'}"


FILE = FileTokenStoreType()
