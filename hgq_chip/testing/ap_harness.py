"""A compiled C++ harness that casts doubles to ap_fixed / ap_ufixed, the hardware's truth.

The ap_types headers are the ones hls4ml ships (``hls4ml/templates/vivado/ap_types``), so
what this harness computes is what the generated firmware computes. One executable holds
an instantiation of ``T v(double); v.to_double()`` for every format of a grid; it is
compiled once (several translation units in parallel) and cached, keyed by a hash of the
sources, headers, flags and compiler, under ``$HGQ_CHIP_CACHE_DIR``,
``$XDG_CACHE_HOME/hgq_chip`` or ``~/.cache/hgq_chip``.

Protocol (native byte order): the input file holds the magic ``b"HGQAPH1\\0"``, an int64
job count, one (int64 format index, int64 count) pair per job, then every job's doubles
back to back; the output file holds the cast results in the same order, as doubles.

    >>> from hgq_chip.fixed import FixedFormat
    >>> ap_cast([0.3, -7.0], FixedFormat(1, 2, 2, "RND", "SAT"))  # doctest: +SKIP
    array([ 0.25, -4.  ])
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from hgq_chip.errors import ToolMissingError
from hgq_chip.fixed.format import FixedFormat

from .ap_harness_source import MAGIC, _generate_sources, default_formats, render_harness_type

_HARNESS_VERSION = 1  # bump when the generated C++ or the protocol changes meaning
DEFAULT_FLAGS = ("-O0", "-std=c++14", "-w")

__all__ = [
    "ApHarness",
    "ap_cast",
    "ap_cast_many",
    "ap_types_include_dir",
    "build_harness",
    "cache_root",
    "default_formats",
    "get_harness",
    "render_harness_type",
]

def cache_root() -> Path:
    env = os.environ.get("HGQ_CHIP_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "hgq_chip"


def ap_types_include_dir() -> Path:
    """The ap_types headers shipped inside the installed hls4ml package."""
    try:
        import hls4ml
    except ImportError as exc:  # pragma: no cover - hls4ml is a hard dependency
        raise ToolMissingError(
            "hls4ml is not installed, and its ap_types headers are needed: pip install 'hls4ml>=1.3'"
        ) from exc
    path = Path(hls4ml.__file__).parent / "templates" / "vivado" / "ap_types"
    if not (path / "ap_fixed.h").is_file():
        raise ToolMissingError(
            f"hls4ml at {Path(hls4ml.__file__).parent} has no ap_types/ap_fixed.h; reinstall it: "
            "pip install --force-reinstall 'hls4ml>=1.3'"
        )
    return path


def _find_compiler(compiler: str | None) -> str:
    name = compiler or os.environ.get("CXX") or "g++"
    path = shutil.which(name)
    if path is None:
        raise ToolMissingError(
            f"C++ compiler {name!r} not found on PATH; the ap_fixed harness needs it. "
            "Install g++ (Debian/Ubuntu: sudo apt-get install g++; Fedora: sudo dnf install gcc-c++; "
            "conda: conda install -c conda-forge gxx) or point $CXX at a compiler."
        )
    return path


def _compiler_identity(path: str) -> str:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
        version = out.stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ToolMissingError(f"cannot run C++ compiler {path!r}: {exc}; install g++ or set $CXX") from exc
    return f"{os.path.realpath(path)}\n{version}"


def _headers_digest(include: Path) -> str:
    digest = hashlib.sha256()
    for p in sorted(include.rglob("*")):
        if p.is_file():
            digest.update(str(p.relative_to(include)).encode())
            digest.update(p.read_bytes())
    return digest.hexdigest()


def _available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class ApHarness:
    """A compiled harness; ``cast`` / ``cast_many`` run it (one process call per batch)."""

    executable: Path
    formats: tuple[FixedFormat, ...]
    compile_seconds: float | None = None  # None when the binary came from the cache
    _index: dict = field(init=False, repr=False)

    def __post_init__(self):
        self._index = {fmt: idx for idx, fmt in enumerate(self.formats)}

    def __repr__(self) -> str:
        return f"ApHarness({str(self.executable)!r}, {len(self.formats)} formats)"

    def __contains__(self, fmt: FixedFormat) -> bool:
        return fmt in self._index

    def index(self, fmt: FixedFormat) -> int:
        if fmt.width == 0:
            raise ValueError(f"{fmt} has zero width: there is no ap_fixed type for it (it quantizes to 0)")
        try:
            return self._index[fmt]
        except KeyError:
            raise ValueError(
                f"{fmt} ({render_harness_type(fmt)}) is not compiled into this harness; "
                "build one that has it with build_harness(formats=[...])"
            ) from None

    def cast(self, values, fmt: FixedFormat) -> np.ndarray:
        """``T(double(x)).to_double()`` for every x in ``values`` (shape kept)."""
        return self.cast_many([(values, fmt)])[0]

    def cast_many(self, jobs: Iterable[tuple[object, FixedFormat]]) -> list[np.ndarray]:
        """Cast several (values, format) pairs with a single run of the harness."""
        arrays, table = [], []
        for values, fmt in jobs:
            a = np.asarray(values, dtype=np.float64)
            if not np.all(np.isfinite(a)):
                raise ValueError("ap_fixed has no NaN or infinity; pass finite values only")
            arrays.append(a)
            table.append((self.index(fmt), a.size))
        if not arrays:
            return []
        header = MAGIC + np.array([len(table)], dtype=np.int64).tobytes()
        header += np.array(table, dtype=np.int64).reshape(-1).tobytes()
        flat = np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.zeros(0)
        with tempfile.TemporaryDirectory(prefix="hgq_ap_") as tmp:
            src, dst = Path(tmp, "in.bin"), Path(tmp, "out.bin")
            with open(src, "wb") as fh:
                fh.write(header)
                fh.write(np.ascontiguousarray(flat, dtype=np.float64).tobytes())
            run = subprocess.run([str(self.executable), str(src), str(dst)], capture_output=True, text=True)
            if run.returncode != 0:
                raise RuntimeError(f"ap_fixed harness failed ({run.returncode}): {run.stderr.strip()}")
            out = np.fromfile(dst, dtype=np.float64)
        if out.size != flat.size:
            raise RuntimeError(f"ap_fixed harness returned {out.size} values for {flat.size} inputs")
        results, offset = [], 0
        for a in arrays:
            results.append(out[offset : offset + a.size].reshape(a.shape))
            offset += a.size
        return results

    def listed_types(self) -> list[str]:
        run = subprocess.run([str(self.executable), "--list"], capture_output=True, text=True, check=True)
        return [line.split(" ", 1)[1] for line in run.stdout.splitlines()]


def _compile(cxx: str, flags: Sequence[str], include: Path, workdir: Path, sources: dict[str, str], jobs: int) -> Path:
    for name, text in sources.items():
        (workdir / name).write_text(text)

    def compile_one(name: str) -> Path:
        obj = workdir / (name[:-4] + ".o")
        cmd = [cxx, *flags, "-I", str(include), "-c", str(workdir / name), "-o", str(obj)]
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"compiling {name} failed:\n{' '.join(cmd)}\n{run.stderr[-4000:]}")
        return obj

    # Biggest units first so the pool stays busy.
    order = sorted(sources, key=lambda n: -len(sources[n]))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        objects = list(pool.map(compile_one, order))
    exe = workdir / "ap_harness"
    run = subprocess.run([cxx, *objects, "-o", str(exe)], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"linking the ap_fixed harness failed:\n{run.stderr[-4000:]}")
    return exe


def build_harness(
    formats: Iterable[FixedFormat] | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    compiler: str | None = None,
    flags: Sequence[str] = DEFAULT_FLAGS,
    units: int | None = None,
    jobs: int | None = None,
    force: bool = False,
) -> ApHarness:
    """Compile (or load from the cache) a harness for ``formats`` (default: :func:`default_formats`).

    ``units`` translation units are compiled by ``jobs`` parallel compiler processes
    (defaults: one unit per available CPU). Raises :class:`ToolMissingError` without g++.
    """
    formats = tuple(default_formats() if formats is None else formats)
    if not formats:
        raise ValueError("no formats to compile")
    for fmt in formats:
        if fmt.width < 1:
            raise ValueError(f"{fmt} has zero width and no ap_fixed type; leave it out")
    if len(set(formats)) != len(formats):
        raise ValueError("duplicate formats")
    cxx = _find_compiler(compiler)
    include = ap_types_include_dir()
    jobs = jobs or _available_cpus()
    units = max(1, min(len(formats), units or jobs))
    sources = _generate_sources(formats, units)

    key = hashlib.sha256()
    key.update(f"v{_HARNESS_VERSION}\n{_compiler_identity(cxx)}\n{' '.join(flags)}\n".encode())
    key.update(_headers_digest(include).encode())
    for name in sorted(sources):
        key.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    digest = key.hexdigest()[:24]

    root = Path(cache_dir) if cache_dir is not None else cache_root()
    final = root / "ap_harness" / digest
    exe = final / "ap_harness"
    if not force and exe.is_file() and os.access(exe, os.X_OK):
        harness = ApHarness(exe, formats, None)
        try:
            if harness.listed_types() == [render_harness_type(f) for f in formats]:
                return harness
        except (OSError, subprocess.SubprocessError):
            pass  # a broken cache entry: rebuild it below

    final.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix=f"{digest}.tmp.", dir=final.parent))
    try:
        _compile(cxx, flags, include, workdir, sources, jobs)
        seconds = time.perf_counter() - start
        (workdir / "build.json").write_text(
            json.dumps(
                {
                    "compiler": cxx,
                    "flags": list(flags),
                    "include": str(include),
                    "units": units,
                    "jobs": jobs,
                    "formats": len(formats),
                    "compile_seconds": round(seconds, 2),
                },
                indent=2,
            )
        )
        if final.exists():
            shutil.rmtree(final, ignore_errors=True)
        try:
            os.rename(workdir, final)
        except OSError:
            # Another process installed the same harness meanwhile; use theirs.
            if not exe.is_file():
                raise
    finally:
        if workdir.exists():
            shutil.rmtree(workdir, ignore_errors=True)
    return ApHarness(exe, formats, seconds)


_default: ApHarness | None = None
_default_lock = threading.Lock()


def get_harness() -> ApHarness:
    """The default-grid harness, built (or loaded from the cache) on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = build_harness()
        return _default


def ap_cast(values, fmt: FixedFormat) -> np.ndarray:
    """Cast doubles to ``fmt``'s ap_fixed / ap_ufixed type and back, with the default harness."""
    return get_harness().cast(values, fmt)


def ap_cast_many(jobs: Iterable[tuple[object, FixedFormat]]) -> list[np.ndarray]:
    """:func:`ap_cast` for many (values, format) pairs, in one run of the harness."""
    return get_harness().cast_many(jobs)
