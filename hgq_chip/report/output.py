"""Writing a report page so that nothing partial is ever left (the checks before it are
``page.check_report_output``).

``StagedReport`` builds the page and its plots in
a hidden folder beside the page and moves them in at the end (``os.replace``), so Ctrl-C
or an error leaves either the old report or the new one; the folders of killed runs are
removed by the next run.

The plot folder (``report_files/`` beside the page) is ours only if it is new, empty or holds
the list of plots an earlier report wrote (``PLOTS_LIST``, name and SHA-256 of each): a plot
replaces only a file of that list still holding what the report wrote, so a file of the
user's in that folder is never overwritten (UnsafeOutputError).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..atomic_write import remove_stale_staging, staging_name
from ..errors import UnsafeOutputError

STAGING_PREFIX = ".hgq_chip_report-"
PLOTS_LIST = ".hgq_chip_report_plots"


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def listed_plots(plot_dir: Path) -> dict[str, str]:
    """{name: sha256} of the plots an earlier report wrote into ``plot_dir``."""
    try:
        lines = (plot_dir / PLOTS_LIST).read_text().splitlines()
    except OSError:
        return {}
    return {name: digest for digest, _, name in (line.partition(" ") for line in lines) if name}


def check_plot_dir(plot_dir: Path, names=None) -> None:
    """UnsafeOutputError when writing plots ``names`` (None: any) into ``plot_dir`` could replace a
    file an earlier report did not write; a new or empty folder is fine."""
    if not plot_dir.is_dir():
        return
    present = {p.name for p in plot_dir.iterdir()} - {PLOTS_LIST}
    listed = listed_plots(plot_dir)
    if present and not (plot_dir / PLOTS_LIST).is_file():
        raise UnsafeOutputError(f"{plot_dir} holds files no hgq_chip report wrote ({', '.join(sorted(present)[:3])}"
                                f"{', ...' if len(present) > 3 else ''}); the plots go there: move them or write "
                                "the report into another folder (--output)")
    clash = sorted(name for name in set(names or ()) & present
                   if listed.get(name) != _digest(plot_dir / name))  # replaced or edited since: the user's
    if clash:
        raise UnsafeOutputError(f"{plot_dir / clash[0]} was not written by an hgq_chip report; the plot of that "
                                "name would replace it: move it or write the report into another folder (--output)")


class StagedReport:
    """A hidden staging folder beside ``output``; ``commit`` moves the page (and plots) into place.

    Use as a context manager: the staging folder is always removed on exit.
    """

    def __init__(self, output: Path, plot_dir: Path | None):
        self.output = output
        self.plot_dir = plot_dir
        output.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(output.parent, STAGING_PREFIX)  # left by a killed run
        self.folder = Path(tempfile.mkdtemp(prefix=staging_name(STAGING_PREFIX), dir=output.parent))
        self.staged_plots = self.folder / plot_dir.name if plot_dir is not None else None

    def __enter__(self) -> StagedReport:
        return self

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def commit(self, text: str) -> Path:
        page = self.folder / "page"
        page.write_text(text)
        if self.staged_plots is not None and self.staged_plots.is_dir():
            plots = sorted(self.staged_plots.iterdir())
            check_plot_dir(self.plot_dir, [plot.name for plot in plots])  # a user may have added files since
            self.plot_dir.mkdir(exist_ok=True)
            listed = {**listed_plots(self.plot_dir), **{plot.name: _digest(plot) for plot in plots}}
            (self.staged_plots / PLOTS_LIST).write_text("".join(f"{d} {n}\n" for n, d in sorted(listed.items())))
            os.replace(self.staged_plots / PLOTS_LIST, self.plot_dir / PLOTS_LIST)
            for plot in plots:
                os.replace(plot, self.plot_dir / plot.name)
        os.replace(page, self.output)
        return self.output
