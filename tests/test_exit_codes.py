"""Exit codes: one per class of hgq_chip.errors, none reserved, all in the CLI reference's table.

Reserved codes: 0 (success), 2 (argparse's usage error), 130 (Ctrl-C, 128 + SIGINT) and 141
(closed stdout, 128 + SIGPIPE); codes above 125 also clash with the shell's own meanings.
The table under "## Exit codes" of docs/cli.md pairs each code with its meaning and names the class
(the base class HGQChipError is the "other error" row, code 1).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from hgq_chip import errors
from hgq_chip.cli_runtime import EXIT_BROKEN_PIPE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED
from hgq_chip.errors import HGQChipError

CLI_PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
RESERVED = {0: "success", 2: "argparse usage error", 130: "Ctrl-C", 141: "closed stdout", 143: "SIGTERM"}


def error_classes(module) -> list[type]:
    """Every exception class defined in ``module`` (not imported into it)."""
    return [cls for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__]


def code_problems(classes: list[type], base: type) -> list[str]:
    """Why the classes' exit codes are not one unique, unreserved code per class (empty: fine)."""
    problems, seen = [], {}
    for cls in classes:
        if not issubclass(cls, base):
            problems.append(f"{cls.__name__} is not a {base.__name__}: the CLI would not map it to an exit code")
            continue
        code = cls.__dict__.get("exit_code")
        if not isinstance(code, int) or isinstance(code, bool):
            problems.append(f"{cls.__name__} defines no exit_code of its own")
            continue
        if code in RESERVED or not 1 <= code <= 125:
            problems.append(f"{cls.__name__}.exit_code = {code} is reserved ({RESERVED.get(code, 'outside 1-125')})")
        if code in seen:
            problems.append(f"{cls.__name__} and {seen[code]} share exit code {code}")
        seen[code] = cls.__name__
    return problems


def page_exit_table(text: str) -> dict[int, str]:
    """``{code: meaning}`` from the table(s) of the "## Exit codes" section (two pairs per row allowed)."""
    section = re.search(r"^## Exit codes\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert section, "docs/cli.md has no '## Exit codes' section"
    table = {}
    for line in section.group(1).splitlines():
        row = line.strip().strip("|")
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", row)] if line.startswith("|") else []
        for code, meaning in zip(cells[0::2], cells[1::2]):
            if code.isdigit():
                assert int(code) not in table, f"exit code {code} is listed twice in docs/cli.md"
                table[int(code)] = meaning
    return table


def page_problems(classes: list[type], base: type, table: dict[int, str]) -> list[str]:
    problems = []
    by_code = {cls.exit_code: cls for cls in classes}
    for code, cls in by_code.items():
        if code not in table:
            problems.append(f"exit code {code} ({cls.__name__}) is missing from docs/cli.md's table")
        elif cls is not base and f"`{cls.__name__}`" not in table[code]:
            problems.append(f"docs/cli.md's row for exit code {code} does not name `{cls.__name__}`: {table[code]!r}")
    for code, meaning in table.items():
        if code not in by_code and code not in RESERVED:
            problems.append(f"docs/cli.md lists exit code {code} ({meaning!r}), which no error class has")
        for named in re.findall(r"`(\w+Error)`", meaning):
            owner = getattr(errors, named, None)
            if owner is None or owner.exit_code != code:
                problems.append(f"docs/cli.md's row {code} names `{named}`, whose code is not {code}")
    return problems


def test_every_error_class_has_its_own_unreserved_code():
    classes = error_classes(errors)
    assert len(classes) >= 15, "hgq_chip.errors lost its classes?"
    assert not code_problems(classes, HGQChipError)
    assert HGQChipError.exit_code == EXIT_INTERNAL == 1


def test_the_cli_runtime_codes_are_the_reserved_ones():
    assert (EXIT_INTERRUPTED, EXIT_BROKEN_PIPE, EXIT_TERMINATED) == (130, 141, 143)


def test_every_code_is_in_the_cli_page_table_with_its_class():
    table = page_exit_table(CLI_PAGE.read_text())
    assert set(RESERVED) <= set(table), f"docs/cli.md's table lacks reserved codes {set(RESERVED) - set(table)}"
    problems = page_problems(error_classes(errors), HGQChipError, table)
    assert not problems, "\n".join(problems)


def test_the_checks_catch_duplicates_reserved_codes_and_missing_rows():
    class Base(Exception):
        exit_code = 1

    class A(Base):
        exit_code = 3

    class B(Base):
        exit_code = 3

    class C(Base):
        exit_code = 2

    class D(Base):
        pass

    class Stray(Exception):
        exit_code = 4

    problems = code_problems([Base, A, B, C, D, Stray], Base)
    expected = ["share exit code 3", "reserved", "no exit_code of its own", "not a Base"]
    assert len(problems) == len(expected) and all(part in problem for part, problem in zip(expected, problems)), problems
    text = ("## Exit codes\n\n| code | meaning | code | meaning |\n|---|---|---|---|\n"
            "| 1 | other | 3 | `A` |\n| 9 | `B` | | |\n\n## Next\n")
    table = page_exit_table(text)
    assert table == {1: "other", 3: "`A`", 9: "`B`"}
    assert len(page_problems([Base, A], Base, table)) == 1  # 9 is listed but no class has it
