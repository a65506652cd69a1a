"""Writing exported files that hold job URLs: readable only by their
owner, in a directory no other user can swap them in."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Sequence

from onecron.cli.errors import CommandError


def _private_dir(path: str) -> int:
    """A descriptor of the directory ``path``, made (parents too) with mode
    0700 where missing.

    :raises CommandError: for a directory that another user owns or that
        every user may write to, where files could be swapped under us
    """
    path = os.path.abspath(path)
    missing = []
    head = path
    while not os.path.lexists(head):
        missing.append(head)
        head = os.path.dirname(head)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue
        os.chmod(directory, 0o700)  # whatever the umask
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    info = os.fstat(descriptor)
    if info.st_uid not in (os.geteuid(), 0) or info.st_mode & 0o002:
        os.close(descriptor)
        whose = ('writable by every user' if info.st_mode & 0o002
                 else f'owned by user id {info.st_uid}')
        raise CommandError(f'{path} is {whose}: pick a directory of your '
                           f'own for files that hold job URLs')
    return descriptor


def _write_private(directory: str,
                   files: Sequence[tuple[str, str]]) -> list[str]:
    """Write ``files`` (name, text) into ``directory``, each readable by
    its owner only (0600, whatever the umask); their paths.

    Each is written to a new file (``O_EXCL``, ``O_NOFOLLOW``) and renamed
    over the old one, which replaces a symbolic link or a file with wider
    modes rather than writing through it.
    """
    try:
        descriptor = _private_dir(directory)
    except OSError as exc:
        raise CommandError(f'cannot use {directory}: {exc.strerror}') from exc
    paths = []
    try:
        for name, text in files:
            path = os.path.join(os.path.abspath(directory), name)
            temporary = f'.{name}.{uuid.uuid4().hex[:12]}'
            try:
                handle = os.open(temporary, os.O_WRONLY | os.O_CREAT
                                 | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o600, dir_fd=descriptor)
                try:
                    with open(handle, 'w', encoding='utf-8') as file:
                        os.fchmod(handle, 0o600)  # whatever the umask
                        file.write(text)
                        file.flush()
                        os.fsync(handle)
                    os.replace(temporary, name, src_dir_fd=descriptor,
                               dst_dir_fd=descriptor)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(temporary, dir_fd=descriptor)
                    raise
            except OSError as exc:
                raise CommandError(f'cannot write {path}: '
                                   f'{exc.strerror}') from exc
            paths.append(path)
    finally:
        os.close(descriptor)
    return paths
