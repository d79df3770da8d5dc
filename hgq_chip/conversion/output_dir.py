"""Safe output folders: refusals before anything is touched, one lock per folder, atomic replacement.

Rules (``hgq_chip convert --output-dir``, ``hgq_chip synth --rtl-dir``, the demo's project):

- Refused with :class:`UnsafeOutputError` (exit 14), nothing touched: the current directory or
  one of its ancestors, the home folder or one of its ancestors, a filesystem root or mount
  point, a folder that holds a file the command reads (the input model, data), a path that is a
  file, a path below a file, a parent the user cannot write, a symbolic link to nothing (the path
  or one of its folders: it is never followed), and an existing non-empty folder
  without our marker file (``hgq_chip_project.json``: not written by ``convert``) unless
  ``replace_non_project`` (``--replace-non-project``) is given. Paths are compared, and folders
  locked, after resolving symbolic links, so every name of a folder is the same folder. An existing empty folder is used as if it did not exist.
- An existing project is replaced only with ``force`` (else :class:`OutputExistsError`, exit 8),
  and only if it holds nothing but what convert wrote, unchanged (the manifest lists each file
  with its SHA-256), the C simulation's library and the pages ``report`` registered: files a user
  added inside it (notes, an HLS synthesis run) or generated files a user edited make ``force``
  refuse (:class:`UnsafeOutputError`) unless ``replace_non_project`` is given too.
- Writing happens in a staging folder beside the target, ``.NAME.hgq_chip-staging-PID-XXXX``
  (holding the marker file ``.hgq_chip_staging`` until it is complete). The swap exchanges the
  staging folder and ``NAME`` in one step (Linux ``renameat2(RENAME_EXCHANGE)``), so at every
  instant ``NAME`` is either the complete old folder or the complete new one; the old folder,
  now under the staging name, is marked and deleted last. Where the exchange is not available
  (other systems or file systems) the old folder is renamed aside to
  ``.NAME.hgq_chip-old-PID-XXXX`` (then marked with ``.hgq_chip_replaced``), the new one renamed
  in and the old one deleted last; a kill between the two renames leaves ``NAME`` missing for
  the next run to restore. Ctrl-C or SIGTERM during the swap and the deletion of the old
  folder is noted and the swap finished (the command succeeds: the new folder is complete).
  A killed run leaves at most a staging and a set-aside folder, which
  the next run on the same target removes (restoring the set-aside folder first if ``NAME`` is
  missing). Leftovers are recognised by name and by a marker, the project marker or being
  empty; anything else is left alone with a warning.
- One lock per target, ``.NAME.hgq_chip.lock`` beside it (``fcntl.flock``), is held from the
  cleanup of leftovers to the end of the swap. A second command on the same target does not
  wait: it fails at once with :class:`OutputLockedError` (exit 15) and touches nothing. The lock
  file is removed when the lock is released (a killed run's lock file is reused and removed by
  the next run; the kernel releases the lock itself when a process dies).
- Folders get mode ``0o777 & ~umask`` (also those a writer copied), files keep the modes their writers gave them.

Test hook: if the environment variable ``HGQ_CHIP_TEST_KILL_AFTER`` names one of :data:`STEPS`,
the process SIGKILLs itself right after that step (``tests/test_output_kill_points.py``).
Unset (always, outside those tests), it does nothing.

No Keras is imported here.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
from pathlib import Path

from ..errors import OutputExistsError, OutputLockedError, UnsafeOutputError
from .finishing import signals_noted
from .manifest import MANIFEST_FILE, changed_files, foreign_files

STAGING_TAG = "hgq_chip-staging"
OLD_TAG = "hgq_chip-old"
LOCK_SUFFIX = ".hgq_chip.lock"
STAGING_MARKER = ".hgq_chip_staging"
OLD_MARKER = ".hgq_chip_replaced"
KILL_ENV = "HGQ_CHIP_TEST_KILL_AFTER"
REPLACE_FLAG = "--replace-non-project"

# The points of one replacing write where the kill hook fires, in order (exchange available).
STEPS = ("locked", "cleaned", "staging_created", "staging_marked", "written", "staging_unmarked",
         "new_in_place", "old_marked", "old_deleted")
# The same without renameat2's exchange: the old folder is renamed aside first.
FALLBACK_STEPS = STEPS[:6] + ("old_set_aside", "old_marked", "new_in_place", "old_deleted")
_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def step(name: str) -> None:
    """Test hook: SIGKILL this process after step ``name`` if ``HGQ_CHIP_TEST_KILL_AFTER`` says so."""
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _real(path) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


def check_no_dangling_link(given, what: str = "output") -> None:
    """UnsafeOutputError when ``given`` or one of its folders is a symbolic link to nothing (a
    missing target, or a loop): following it would create folders wherever it points (from the
    filesystem root for an absolute target). Touches nothing."""
    path = Path(os.path.abspath(os.fspath(given)))
    for part in (path, *path.parents):
        if os.path.islink(part) and not os.path.exists(part):
            raise UnsafeOutputError(
                f"{what} {given}: {part} is a symbolic link to {os.readlink(part)!r}, which does not exist; "
                "refusing to follow it. Remove the link or name a real folder")


def check_location(given, reads=(), what: str = "output") -> Path:
    """The real path of ``given`` if a command may create or replace it; else UnsafeOutputError.

    Refuses a dangling symbolic link (the path or one of its folders), a filesystem root or
    mount point, the current directory or an ancestor, the home
    folder or an ancestor, a path holding (or equal to) one of ``reads``, a path below a file
    and a parent the user cannot write into. Touches nothing.
    """
    if not str(given).strip():
        raise UnsafeOutputError(f"the {what} path is empty; name a new folder")
    check_no_dangling_link(given, what)
    real = _real(given)
    if real == Path(real.anchor) or os.path.ismount(real):
        raise UnsafeOutputError(f"{what} {given} is a filesystem root or mount point; name a new folder inside it")
    cwd = _real(os.getcwd())
    if cwd.is_relative_to(real):
        where = "the current directory" if cwd == real else f"an ancestor of the current directory ({cwd})"
        raise UnsafeOutputError(f"{what} {given} is {where}, which would be replaced; name a new folder")
    home = _real(os.path.expanduser("~"))
    if home.is_relative_to(real):
        where = "your home folder" if home == real else f"an ancestor of your home folder ({home})"
        raise UnsafeOutputError(f"{what} {given} is {where}, which would be replaced; name a new folder")
    for source in reads:
        if source is not None and _real(source) == real:
            raise UnsafeOutputError(f"{what} {given} is {source}, which this command reads; choose another path")
        if source is not None and _real(source).is_relative_to(real):
            raise UnsafeOutputError(
                f"{what} {given} holds {source}, which this command reads, so replacing it would delete it; "
                "name another folder"
            )
    parent = real.parent
    while not os.path.lexists(parent):
        parent = parent.parent
    if not parent.is_dir():
        raise UnsafeOutputError(f"{what} {given} cannot be created: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UnsafeOutputError(f"{what} {given} cannot be created: no permission to write into {parent}")
    return real


def check_output_dir(output_dir, *, force: bool = False, replace_non_project: bool = False, reads=(),
                     marker: str = MANIFEST_FILE, what: str = "output folder",
                     replace_flag: str | None = REPLACE_FLAG) -> Path:
    """Every refusal of the module docstring, before anything is touched; returns the real target path.

    ``marker`` is the file that makes an existing folder ours (the project manifest for
    ``convert``); ``replace_flag`` the option the message offers for replacing another folder
    (None: the command has none). Raises UnsafeOutputError (exit 14) or OutputExistsError (exit 8).
    """
    real = check_location(output_dir, reads, what)
    if not os.path.lexists(real):
        return real
    if not real.is_dir():
        raise UnsafeOutputError(f"{what} {output_dir} is a file, not a folder; name a folder")
    if (real / marker).is_file():
        if not force:
            raise OutputExistsError(f"{output_dir} exists; choose another folder or pass --force to replace it")
        ours = marker == MANIFEST_FILE and not replace_non_project
        foreign = foreign_files(real) if ours else []
        flag = replace_flag or "replace_non_project=True"
        if foreign:
            raise UnsafeOutputError(
                f"{what} {output_dir} holds files convert did not write ({_shown(foreign)}); --force replaces only "
                f"what convert wrote. Move them out, or pass {flag} to delete them with the project")
        changed = changed_files(real) if ours else []
        if changed:
            raise UnsafeOutputError(
                f"{what} {output_dir} holds generated files edited since convert wrote them ({_shown(changed)}); "
                "--force would discard those edits. Copy the edited files (or the whole folder) elsewhere first, "
                f"or pass {flag} to discard them with the project")
    elif any(real.iterdir()) and not replace_non_project:
        hint = "choose a new or empty folder"
        if replace_flag:
            hint = (f"refusing to replace it even with --force. Choose a new folder, or pass {replace_flag} "
                    "(Python: replace_non_project=True) to delete everything in it")
        raise UnsafeOutputError(
            f"{what} {output_dir} exists and was not written by hgq_chip (it has no {marker}); {hint}")
    return real


def _shown(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


class FolderLock:
    """An exclusive ``flock`` on ``.NAME.hgq_chip.lock`` beside ``target``; never waits."""

    def __init__(self, target: Path):
        self.target = target
        self.path = target.parent / f".{target.name}{LOCK_SUFFIX}"
        self._fd: int | None = None

    def __enter__(self):
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
                os.close(fd)
                raise OutputLockedError(
                    f"{self.target} is in use by another hgq_chip command (pid {holder}, lock "
                    f"{self.path}); wait for it to finish, then run again"
                ) from None
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            opened = os.fstat(fd)
            if current is not None and (current.st_ino, current.st_dev) == (opened.st_ino, opened.st_dev):
                break
            os.close(fd)  # the previous holder removed this file after we opened it: lock the new one
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # while still locked, so no one can hold a lock on a file we remove
        os.close(self._fd)
        self._fd = None
        return False


@contextlib.contextmanager
def project_in_use(project_dir):
    """Hold ``project_dir``'s :class:`FolderLock` while a command compiles and runs it (``verify``),
    so a ``convert --force`` of the same folder fails with OutputLockedError (exit 15) instead of
    swapping the folder out under g++, and a second ``verify`` does not build the same library at
    once. The lock is taken on the resolved path, so every name of the folder (a symbolic link,
    ``..``) shares it. Raises OutputLockedError if held. A lock file that cannot be created (a read-only parent
    folder, where no convert can write either) is skipped."""
    lock = FolderLock(_real(project_dir))  # the resolved path, as convert locks: one lock per folder
    try:
        lock.__enter__()
    except OutputLockedError:
        raise
    except OSError:
        lock = None
    try:
        yield
    finally:
        if lock is not None:
            lock.__exit__(None, None, None)


def _leftover_name(target: Path, tag: str) -> Path:
    return target.parent / f".{target.name}.{tag}-{os.getpid()}-{secrets.token_hex(4)}"


def _leftovers(target: Path, tag: str) -> list[Path]:
    prefix = f".{target.name}.{tag}-"
    return sorted((p for p in target.parent.iterdir() if p.name.startswith(prefix) and p.is_dir()
                   and not p.is_symlink()), key=lambda p: p.stat().st_mtime)


def _recognised(folder: Path, marker: str, project_marker: str) -> bool:
    return (folder / marker).is_file() or (folder / project_marker).is_file() or not any(folder.iterdir())


def remove_marked(folder: Path, marker: str) -> None:
    """Delete a folder of ours, its marker file last, so an interrupted deletion stays recognisable."""
    (folder / marker).touch()
    for child in folder.iterdir():
        if child.name == marker:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    (folder / marker).unlink()
    folder.rmdir()


def clean_leftovers(target: Path, project_marker: str = MANIFEST_FILE, log=lambda message: None) -> None:
    """Restore or remove what killed runs on ``target`` left (call with the target's lock held)."""
    olds = _leftovers(target, OLD_TAG)
    if olds and not os.path.lexists(target):
        restored = olds.pop()  # the newest set-aside folder is the last complete one at the target
        with contextlib.suppress(FileNotFoundError):
            (restored / OLD_MARKER).unlink()
        os.rename(restored, target)
        log(f"[hgq_chip] restored {target} from an interrupted run's {restored.name}")
    for folder, marker in [(p, STAGING_MARKER) for p in _leftovers(target, STAGING_TAG)] + [
            (p, OLD_MARKER) for p in olds]:
        if _recognised(folder, marker, project_marker):
            remove_marked(folder, marker)
            log(f"[hgq_chip] removed {folder.name}, left by an interrupted run")
        else:
            log(f"[hgq_chip] warning: left {folder} alone: its name looks like an interrupted run's, but it "
                f"has neither {marker} nor {project_marker}")


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where that is unsupported."""
    import ctypes
    import errno

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


def _give_folders_mode_of(top: Path) -> None:
    """Folders copied by writers (hls4ml's copytree keeps the installed package's modes) get ``top``'s
    mode, which ``os.mkdir`` made ``0o777 & ~umask``."""
    mode = top.stat().st_mode & 0o7777
    for folder, subfolders, _ in os.walk(top):
        for name in subfolders:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, mode)


def _put_in_place(staging: Path, target: Path) -> tuple[Path, str] | None:
    """Make the complete ``staging`` folder ``target``; returns where the old target now is (and its marker)."""
    if not os.path.lexists(target) or (target.is_dir() and not any(target.iterdir())):
        os.rename(staging, target)  # rename(2) replaces an empty folder atomically
        step("new_in_place")
        return None
    if exchange(staging, target):
        step("new_in_place")  # the old folder now has the staging name
        (staging / STAGING_MARKER).touch()
        step("old_marked")
        return staging, STAGING_MARKER
    old = _leftover_name(target, OLD_TAG)
    os.rename(target, old)
    step("old_set_aside")
    try:
        (old / OLD_MARKER).touch()
        step("old_marked")
        os.rename(staging, target)
    except BaseException:
        if not os.path.lexists(target):
            os.rename(old, target)
            with contextlib.suppress(FileNotFoundError):
                (target / OLD_MARKER).unlink()
        raise
    step("new_in_place")
    return old, OLD_MARKER


def _swap_in(staging: Path, target: Path, log) -> None:
    """Put the new folder in place, then delete the old one (a failure there only leaves marked litter);
    Ctrl-C and SIGTERM meanwhile are noted, not raised (:func:`.finishing.signals_noted`)."""
    with signals_noted(f"{target} was being replaced", log):
        try:
            old = _put_in_place(staging, target)
        except BaseException:
            if staging.is_dir():  # the new folder (or, after an exchange, the old one): ours either way
                remove_marked(staging, STAGING_MARKER)
            raise
        if old is not None:
            try:
                remove_marked(*old)
            except OSError as error:
                log(f"[hgq_chip] warning: could not delete the replaced folder {old[0]} ({error}); the next run "
                    "on this folder removes it")
            step("old_deleted")


@contextlib.contextmanager
def replace_atomically(output_dir, *, force: bool = False, replace_non_project: bool = False, reads=(),
                       marker: str = MANIFEST_FILE, what: str = "output folder",
                       replace_flag: str | None = REPLACE_FLAG, log=lambda message: None):
    """Yield an empty staging folder to write into; on success it atomically becomes ``output_dir``.

    Takes the target's lock (OutputLockedError if held), removes leftovers of killed runs,
    repeats :func:`check_output_dir` (the folder may have changed since the caller checked),
    then yields. If the block raises, the staging folder is removed and the target is
    untouched. The caller must write ``marker`` into the staging folder.
    """
    checks = dict(force=force, replace_non_project=replace_non_project, reads=reads, marker=marker, what=what,
                  replace_flag=replace_flag)
    target = check_output_dir(output_dir, **checks)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FolderLock(target):
        step("locked")
        clean_leftovers(target, marker, log)
        step("cleaned")
        check_output_dir(output_dir, **checks)
        staging = _leftover_name(target, STAGING_TAG)
        os.mkdir(staging, 0o777)  # the umask applies, unlike tempfile.mkdtemp's 0o700
        step("staging_created")
        try:
            (staging / STAGING_MARKER).touch()
            step("staging_marked")
            yield staging
            _give_folders_mode_of(staging)
            step("written")
            (staging / STAGING_MARKER).unlink()
            step("staging_unmarked")
        except BaseException:
            remove_marked(staging, STAGING_MARKER)
            raise
        _swap_in(staging, target, log)
