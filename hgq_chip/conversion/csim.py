"""C simulation of a written project: build its shared library with g++, run it in a child process.

This reads only the project directory, so ``verify`` checks exactly the firmware on disk.
The library is never loaded into the calling process: a child Python process
(``csim_child.py``, standard library only) loads it and runs the samples, with inputs and
outputs in raw float64 files of a temporary folder. An abort, failed assert or segfault in the
firmware therefore ends only the child and becomes :class:`SimulationCrashError`. g++ and the
child run in process groups of their own that are killed when the caller is interrupted, and
the child also dies with its parent (Linux's parent-death signal), as does g++ (``group_guard.py``
stops the build's process group when its parent dies), so none is left running; the temporary
folders of runs killed outright are removed by the next run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..atomic_write import remove_stale_staging, staging_name
from ..errors import CompileError, ProjectError, SimulationCrashError, SimulationTooLargeError, ToolMissingError
from .csim_cost import csim_cost

CHILD_SCRIPT = Path(__file__).with_name("csim_child.py")
GUARD_SCRIPT = Path(__file__).with_name("group_guard.py")
# Temporary folders of C simulation runs: ``hgq_chip_csim_<pid>-XXXX`` in the temporary directory;
# those of processes that no longer run (a verify killed by SIGKILL) are removed by the next run.
RUN_PREFIX = "hgq_chip_csim_"
# How much of a failing child's stderr, and of a failing g++ run's error lines, a message shows.
STDERR_TAIL_LINES = 15
COMPILE_ERROR_LINES = 12
# How long an interrupted g++ or simulation child gets to exit on SIGTERM before SIGKILL.
STOP_GRACE_SECONDS = 5.0


def project_name_of(project_dir) -> str:
    """The project name in ``project_dir``'s build script (what ``convert`` was given)."""
    script = Path(project_dir) / "build_lib.sh"
    if not script.is_file():
        raise ProjectError(f"{project_dir} is not an hls4ml project (no build_lib.sh); run `hgq_chip convert` first")
    found = re.search(r"^PROJECT=(\S+)", script.read_text(), re.M)
    if not found:
        raise ProjectError(f"{script} names no PROJECT; was it written by `hgq_chip convert`?")
    return found.group(1)


def first_error_lines(log: str, limit: int = COMPILE_ERROR_LINES) -> tuple[list[str], int]:
    """The first ``limit`` lines of a compiler log that contain "error", and how many there are.

    g++ prints warnings by the page before (and between) the errors; the first error is
    what the user needs, so it is taken from the top, not the tail.
    """
    errors = [line for line in log.splitlines() if re.search(r"error", line, re.I)]
    return errors[:limit], len(errors)


def guarded_command(argv: list[str]) -> list[str]:
    """``argv`` run under ``group_guard.py`` on behalf of this process: start the result with
    ``start_new_session=True`` and the guard leads the group, runs ``argv`` in it, and stops the
    whole group (SIGTERM, SIGKILL after ``group_guard.GRACE_SECONDS``) when this process dies,
    also by SIGKILL; a SIGTERM to the group stops it the same way. Its exit status is ``argv``'s,
    128 + N if ``argv`` was killed by signal N, 127 if ``argv`` could not be started."""
    python = sys.executable or shutil.which("python3") or "python3"
    return [python, "-I", "-S", str(GUARD_SCRIPT), str(os.getpid()), *argv]


def run_stopping_group(argv: list[str], cwd, guarded: bool = False, env: dict | None = None) -> subprocess.CompletedProcess:
    """``subprocess.run(argv)`` (environment ``env``, default this process's) with text output captured, in a
    process group of its own that is
    stopped (:func:`_stop_group`) if this process is interrupted while waiting: Ctrl-C, SIGTERM
    (the CLI raises it as an exception) or any other exception. ``subprocess.run`` alone kills
    only its direct child, and build_lib.sh's g++ would go on compiling after we left.
    ``guarded``: run ``argv`` under ``group_guard.py``, which stops the whole group when this
    process dies without cleaning up (SIGKILL), for commands whose grandchildren (g++) do the work.
    """
    if guarded:
        argv = guarded_command(argv)
    process = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True, env=env)
    try:
        stdout, stderr = process.communicate()
    except BaseException:
        _stop_group(process)
        raise
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def _stop_group(process: subprocess.Popen, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM to ``process``'s whole group (g++ then deletes its temporary files), SIGKILL to what
    is left after ``grace_seconds``; returns once ``process`` has exited."""
    for signum, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)
        try:
            process.communicate(timeout=wait)
            if signum == signal.SIGTERM:  # the leader is gone; end any member still running
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue


def _write_raw(path: Path, array: np.ndarray) -> int:
    """Write ``array`` (2-D) as raw native values; its row size. Empty rows get one padding
    value, since an empty file cannot be memory-mapped (the firmware never reads it)."""
    array.tofile(path) if array.size else np.zeros(1, array.dtype).tofile(path)
    return int(array.shape[1])


def _built_mark(library: Path) -> Path:
    """The file beside a library that a finished build writes (its size and mtime)."""
    return library.with_name(f".{library.name}.built")


def _identity(library: Path) -> str:
    stat = library.stat()
    return f"{stat.st_size} {stat.st_mtime_ns}"


class CSimulation:
    """The C simulation of the hls4ml project in ``project_dir`` (top function ``project_name``)."""

    def __init__(self, project_dir, project_name: str = "myproject"):
        self.project_dir = Path(project_dir)
        self.project_name = project_name
        self._library: Path | None = None

    def _library_path(self) -> Path:
        script = (self.project_dir / "build_lib.sh").read_text()
        stamp = re.search(r"^LIB_STAMP=(\S+)", script, re.M)
        if not stamp:
            raise ProjectError(f"{self.project_dir}/build_lib.sh has no LIB_STAMP; is this an hls4ml project?")
        return self.project_dir / "firmware" / f"{self.project_name}-{stamp.group(1)}.so"

    def build(self, allow_large: bool = False) -> Path:
        """Compile the project's shared library with g++ unless it is up to date; its path.

        Raises ToolMissingError (no g++), ProjectError (no hls4ml project, or one that cannot be
        written: a read-only file system), CompileError
        (g++ failed; the message shows the first error lines and where the full log is) or,
        before g++ starts, SimulationTooLargeError when :func:`~.csim_cost.csim_cost` predicts
        more than an hour or more memory than is available (``allow_large=True`` compiles anyway).
        """
        if shutil.which("g++") is None:
            raise ToolMissingError("g++ is not installed; C simulation needs it (e.g. apt-get install g++)")
        if not (self.project_dir / "build_lib.sh").exists():
            raise ProjectError(f"{self.project_dir} is not an hls4ml project (no build_lib.sh); run `hgq_chip convert` first")
        path = self._library_path()
        if self.needs_build():
            self._check_writable(path.parent)
            if not allow_large:
                self.check_cost()
            _built_mark(path).unlink(missing_ok=True)
            done = run_stopping_group(["bash", "build_lib.sh"], cwd=self.project_dir, guarded=True)
            if done.returncode != 0 or not path.is_file():
                raise self._compile_error(done.stdout + done.stderr)
            _built_mark(path).write_text(_identity(path))
        self._library = path
        return path

    def _check_writable(self, firmware: Path) -> None:
        """ProjectError when the library cannot be compiled into the project (a read-only file
        system or folder), found by creating a scratch file there: ``os.access`` says yes to root
        on read-only folders, and g++ would fail with a misleading compile error."""
        for folder in (self.project_dir, firmware):
            try:
                with tempfile.TemporaryFile(dir=folder):
                    pass
            except OSError as error:
                raise ProjectError(
                    f"cannot write into {folder} ({error.strerror or error}), where verify compiles the C simulation's "
                    f"library; copy the project to a writable folder (cp -r {self.project_dir} /tmp/prj) and verify "
                    "the copy") from None

    def check_cost(self) -> None:
        """SimulationTooLargeError if compiling this project is predicted to be impractical here."""
        cost = csim_cost(self.project_dir)
        if not cost.fits:
            raise SimulationTooLargeError(
                f"the C simulation of {self.project_dir} is too large to compile here: {cost.describe()} "
                "(hgq_chip.conversion.csim_cost). Compile it anyway with verify(..., allow_large=True) or "
                "`hgq_chip verify --allow-large`, or make it smaller: per-layer or per-channel activation "
                "quantizers instead of per-element ones (one generated statement per element), io_stream for "
                "convolutions (io_parallel unrolls their buffers per output pixel), or fewer, smaller layers"
            )

    def _compile_error(self, log: str) -> CompileError:
        with tempfile.NamedTemporaryFile("w", prefix="hgq_chip_compile_", suffix=".log", delete=False) as file:
            file.write(log)
        errors, count = first_error_lines(log)
        shown = "\n".join(errors) if errors else "\n".join(log.splitlines()[-COMPILE_ERROR_LINES:])
        more = f"\n... {count - len(errors)} more error lines" if count > len(errors) else ""
        return CompileError(
            f"compiling the C simulation of {self.project_dir} failed (g++); first errors:\n{shown}{more}\n"
            f"full compiler output: {file.name}. The project was written by convert but does not build: "
            "convert it again with the current hgq_chip, and report the model if it still fails"
        )

    def needs_build(self) -> bool:
        """False when the library is newer than every source of the project."""
        if not (self.project_dir / "build_lib.sh").exists():
            return True  # build() then explains that this is no project
        return not self._is_up_to_date(self._library_path())

    def _is_up_to_date(self, library: Path) -> bool:
        """The library exists, a finished build marked it (a g++ killed while linking leaves a
        partial library, which is rebuilt) and it is newer than every source."""
        mark = _built_mark(library)
        if not library.exists() or not mark.is_file() or mark.read_text() != _identity(library):
            return False
        sources = [p for p in self.project_dir.rglob("*") if p.is_file() and p.suffix != ".so" and p != mark]
        return library.stat().st_mtime >= max(p.stat().st_mtime for p in sources)

    def run(self, inputs: list[np.ndarray], output_sizes: list[int]) -> list[np.ndarray]:
        """Run every sample through the firmware in double precision (exact for < 53-bit types).

        ``inputs``: one array per firmware input, ``(n, ...)``, flattened per sample (the
        caller checks the sizes match the firmware's). Returns one float64 ``(n, size)``
        array per output. Runs in a child process; if it dies or fails, SimulationCrashError.
        """
        remove_stale_staging(Path(tempfile.gettempdir()), RUN_PREFIX)  # of runs killed outright
        library = self._library or self.build()
        n = len(inputs[0])
        if n == 0:
            return [np.zeros((0, int(size)), np.float64) for size in output_sizes]
        with tempfile.TemporaryDirectory(prefix=staging_name(RUN_PREFIX)) as folder:
            work = Path(folder)
            job_inputs, job_outputs = [], []
            for i, x in enumerate(inputs):
                flat = np.ascontiguousarray(np.asarray(x, np.float64).reshape(n, -1))
                job_inputs.append([f"input{i}", _write_raw(work / f"input{i}", flat)])
            for i, size in enumerate(output_sizes):
                job_outputs.append([f"output{i}", _write_raw(work / f"output{i}", np.zeros((n, int(size))))])
            _write_raw(work / "progress", np.zeros((1, 1), np.int64))
            job = {"library": str(library.resolve()), "function": f"{self.project_name}_double", "samples": n,
                   "inputs": job_inputs, "outputs": job_outputs, "parent": os.getpid()}
            (work / "job.json").write_text(json.dumps(job))
            # -I -S: no site-packages or user environment; the child needs only the standard library.
            python = sys.executable or shutil.which("python3") or "python3"
            done = run_stopping_group([python, "-I", "-S", str(CHILD_SCRIPT), str(work)], cwd=work)
            if done.returncode != 0:
                raise self._crash_error(done, int(np.fromfile(work / "progress", np.int64)[0]), n)
            return [np.fromfile(work / name, np.float64, count=n * size).reshape(n, size) for name, size in job_outputs]

    def _crash_error(self, done: subprocess.CompletedProcess, finished: int, n: int) -> SimulationCrashError:
        code = done.returncode
        if code < 0:
            try:
                how = f"was killed by signal {signal.Signals(-code).name} ({signal.strsignal(-code)})"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        where = f"while running sample {finished} (0-based) of {n}" if finished < n else f"after all {n} samples"
        tail = "\n".join(done.stderr.strip().splitlines()[-STDERR_TAIL_LINES:]) or "(nothing)"
        return SimulationCrashError(
            f"the C simulation of {self.project_dir} {how} {where}; your Python session is unaffected. "
            f"Last lines of its stderr:\n{tail}\n"
            "The firmware itself failed (an hls4ml template assert, an out-of-bounds access, ...): check that "
            "the project was converted from this model, convert it again with the current hgq_chip, and "
            "report the model if it still crashes"
        )
