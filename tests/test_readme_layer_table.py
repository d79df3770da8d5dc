"""The layer-family pages (docs/layers/*.md, each a "## Layers" table) name every layer class the
converter has a rule for, and the "QKeras import" page (docs/qkeras.md) every layer class the
QKeras importer plans. (The tables lived in the README before the documentation site.)"""

from __future__ import annotations

import re
from pathlib import Path

import hgq_chip.conversion.rules  # noqa: F401  (registers the conversion rules)
from hgq_chip.conversion.precision import supported_layer_names
from hgq_chip.qkeras_import.plan import SUPPORTED

DOCS = Path(__file__).resolve().parents[1] / "docs"
LAYER_TABLE_HEADER = "| layer | io types | strategies | notes |"


def section_table(text: str, title: str) -> str:
    """The table rows (lines starting with '|') of the section ``title`` (up to the next heading)."""
    start = text.index(title)
    end = text.find("\n#", start + len(title))
    body = text[start:] if end < 0 else text[start:end]
    return "\n".join(line for line in body.splitlines() if line.startswith("|"))


def first_column_names(table: str) -> set[str]:
    """Class names in the first column; 'X1D/2D' stands for X1D and X2D, '(+`BatchNorm`)' is ignored."""
    names = set()
    for row in table.splitlines():
        cell = row.split("|")[1]
        for name in re.findall(r"`(?:keras\.layers\.)?([A-Za-z0-9]+(?:1D/2D)?)`", cell):
            names.update((name[:-5] + "1D", name[:-5] + "2D") if name.endswith("1D/2D") else (name,))
    return names


def family_pages() -> dict[str, str]:
    """``{page name: its "## Layers" table}`` of every layer-family page."""
    tables = {}
    for page in sorted((DOCS / "layers").glob("*.md")):
        text = page.read_text()
        if "\n## Layers\n" in text:
            table = section_table(text, "\n## Layers\n")
            assert table.startswith(LAYER_TABLE_HEADER), f"{page.name}: its '## Layers' table must start with {LAYER_TABLE_HEADER}"
            tables[page.name] = table
    return tables


def test_every_converted_layer_is_in_a_family_page():
    tables = family_pages()
    assert len(tables) >= 9, f"layer-family pages lost: {sorted(tables)}"
    listed = set().union(*(first_column_names(table) for table in tables.values()))
    missing = [name for name in supported_layer_names() if name not in listed]
    assert not missing, f"no page of docs/layers/ lists {missing} in its '## Layers' table"


def test_every_family_page_is_on_the_supported_layers_page():
    index = (DOCS / "layers" / "index.md").read_text()
    unlinked = [name for name in family_pages() if f"]({name})" not in index]
    assert not unlinked, f"docs/layers/index.md does not link the family pages {unlinked}"


def test_every_imported_qkeras_layer_is_in_the_table():
    listed = first_column_names(section_table((DOCS / "qkeras.md").read_text(), "# QKeras import"))
    for row in ("QActivation", "Activation"):
        listed.add(row)  # rows per quantizer: `QActivation(quantized_bits ...)`
    missing = [name for name in SUPPORTED if name not in listed]
    assert not missing, f"docs/qkeras.md 'QKeras import' lacks {missing}"
