"""Writing a report page so that nothing partial is ever left (the checks before it are
``page.check_report_output``).

``StagedReport`` builds the page and its plots in
a hidden folder beside the page and moves them in at the end (``os.replace``), so Ctrl-C
or an error leaves either the old report or the new one; the folders of killed runs are
removed by the next run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..atomic_write import remove_stale_staging, staging_name

STAGING_PREFIX = ".hgq_chip_report-"


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
