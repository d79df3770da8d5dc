"""Where a report page may be written, and writing it so that nothing partial is ever left.

``check_output`` runs before anything is written: the page must not be a folder, an
input of the report, or an existing file that is not an earlier hgq_chip report, and its
folder must be creatable and writable. ``StagedReport`` builds the page and its plots in
a hidden folder beside the page and moves them in at the end (``os.replace``), so Ctrl-C
or an error leaves either the old report or the new one; the folders of killed runs are
removed by the next run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..errors import UnsafeOutputError
from ..output_file import check_output_file, remove_stale_staging, staging_name

# Every page starts with its title, "hgq_chip report: NAME" (page.render_html / render_markdown).
REPORT_MARK = "hgq_chip report"
STAGING_PREFIX = ".hgq_chip_report-"


def is_report_page(path: Path) -> bool:
    """True when ``path`` is a page written by ``write_report`` (its title in the first bytes)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(400).decode("utf-8", errors="replace")
    except OSError:
        return False
    return REPORT_MARK in head


def check_output(output: Path, inputs: list[Path], plot_dir: Path | None) -> None:
    """UnsafeOutputError unless ``output`` (and ``plot_dir``) can be written without harming any file."""
    check_output_file(output, inputs, "--output")
    if output.exists() and not is_report_page(output):
        raise UnsafeOutputError(f"--output {output} exists and is not an hgq_chip report; refusing to overwrite it "
                                "(choose another path or move the file away)")
    if plot_dir is not None and plot_dir.exists() and not plot_dir.is_dir():
        raise UnsafeOutputError(f"the plots go to {plot_dir}, which is a file; move it away or choose another --output")


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
            self.plot_dir.mkdir(exist_ok=True)
            for plot in sorted(self.staged_plots.iterdir()):
                os.replace(plot, self.plot_dir / plot.name)
        os.replace(page, self.output)
        return self.output
