"""README's "Supported layers" table names every layer class the converter has a rule for, and
its "QKeras import" table every layer class the QKeras importer plans."""

from __future__ import annotations

import re
from pathlib import Path

import hgq_chip.conversion.rules  # noqa: F401  (registers the conversion rules)
from hgq_chip.conversion.precision import supported_layer_names
from hgq_chip.qkeras_import.plan import SUPPORTED

README = Path(__file__).resolve().parents[1] / "README.md"


def section_table(title: str) -> str:
    text = README.read_text()
    start = text.index(title)
    end = text.index("\n#", start + len(title))
    return "\n".join(line for line in text[start:end].splitlines() if line.startswith("|"))


def first_column_names(table: str) -> set[str]:
    """Class names in the first column; 'X1D/2D' stands for X1D and X2D, '(+`BatchNorm`)' is ignored."""
    names = set()
    for row in table.splitlines():
        cell = row.split("|")[1]
        for name in re.findall(r"`(?:keras\.layers\.)?([A-Za-z0-9]+(?:1D/2D)?)`", cell):
            names.update((name[:-5] + "1D", name[:-5] + "2D") if name.endswith("1D/2D") else (name,))
    return names


def test_every_converted_layer_is_in_the_table():
    listed = first_column_names(section_table("## Supported layers"))
    missing = [name for name in supported_layer_names() if name not in listed]
    assert not missing, f"README 'Supported layers' lacks {missing}"


def test_every_imported_qkeras_layer_is_in_the_table():
    listed = first_column_names(section_table("### QKeras import"))
    for row in ("QActivation", "Activation"):
        listed.add(row)  # rows per quantizer: `QActivation(quantized_bits ...)`
    missing = [name for name in SUPPORTED if name not in listed]
    assert not missing, f"README 'QKeras import' lacks {missing}"
