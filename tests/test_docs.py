"""The documentation: the site builds with `mkdocs build --strict` (warnings are errors: a page
left out of the nav, a broken link or anchor, a docstring griffe cannot parse), every relative
link and anchor of README.md and docs/ resolves, and the README stays a short entry point."""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
FENCED = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"(?<!!)\[(?:[^\]\n]|\][^(])*?\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.MULTILINE)


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


def prose(text: str) -> str:
    """The Markdown without code blocks and inline code, where link syntax is only text."""
    return INLINE_CODE.sub("", FENCED.sub("", text))


def slug(heading: str) -> str:
    """Python-Markdown's toc slug (MkDocs' default): markup removed, ASCII, lower case, hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    """The ids of a page's headings, with toc's ``_1``, ``_2`` suffixes for repeated ones."""
    seen: dict[str, int] = {}
    ids = set()
    for _, title in HEADING.findall(FENCED.sub("", path.read_text())):
        base = slug(title)
        count = seen.get(base, 0)
        ids.add(base if count == 0 else f"{base}_{count}")
        seen[base] = count + 1
    return ids


def link_problems(page: Path) -> list[str]:
    problems = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.relative_to(REPO)}: ({target})"
        if not resolved.exists():
            problems.append(f"{where}: {path_part} does not exist")
        elif anchor and (resolved.suffix != ".md" or anchor not in anchors(resolved)):
            problems.append(f"{where}: no heading #{anchor} in {resolved.relative_to(REPO)}")
    return problems


def test_every_relative_link_and_anchor_resolves():
    checked = pages()
    assert len(checked) >= 25, [str(page) for page in checked]
    problems = [problem for page in checked for problem in link_problems(page)]
    assert not problems, "\n".join(problems)


def test_the_link_check_catches_missing_files_and_anchors(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n\n## Exit codes\n\n## Exit codes\n")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#exit-codes) [ok](a.md#exit-codes_1) [ok](#own) [web](https://x.org/y)\n"
                    "`[code](nowhere.md)`\n```\n[block](nowhere.md)\n```\n# Own\n"
                    "[gone](missing.md) [bad](a.md#nothing) [bad](#exit-codes)\n")
    global REPO
    repo, REPO = REPO, tmp_path
    try:
        problems = link_problems(page)
    finally:
        REPO = repo
    assert len(problems) == 3 and "missing.md" in problems[0] and "#nothing" in problems[1], problems


def test_readme_is_short_and_names_the_two_commands():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) < 200
    for command in ("bash ci/demo.sh", "bash ci/test.sh"):
        assert command in text and (REPO / command.split()[1]).is_file(), command
    assert "bash ci/test.sh" in (REPO / ".ci" / "run").read_text(), "CI no longer runs the README's test command"


def test_mkdocs_build_strict(tmp_path):
    """The site builds with warnings as errors (about 4 s). mkdocs comes with the `docs` extra (in `dev`)."""
    try:
        import mkdocs  # noqa: F401
        import mkdocstrings  # noqa: F401
    except ImportError as error:
        pytest.fail(f"{error}: install the docs extra (pip install -e '.[docs]', part of '.[dev]')")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
                          env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "index.html").read_text().count("hgq_chip.api.convert") >= 1
    assert (tmp_path / "site" / "tutorial" / "index.html").is_file()
