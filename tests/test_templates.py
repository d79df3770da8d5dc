"""HLS templates: found in the installed package first, else in the source checkout; a typed error otherwise.

The wheel itself (setup.py copying the whole firmware_templates/ folder into it, and the
lookup from a venv outside the checkout) is checked by ci/wheel_check.sh.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hgq_chip.conversion import templates
from hgq_chip.conversion.asq_post_hls import HEADER_NAME, header_path
from hgq_chip.errors import HGQChipError

CHECKOUT = Path(__file__).resolve().parents[1] / "firmware_templates"


def test_every_checkout_template_is_found():
    names = [p.name for p in CHECKOUT.iterdir() if p.is_file()]
    assert HEADER_NAME in names
    for name in names:
        assert templates.template_path(name).read_bytes() == (CHECKOUT / name).read_bytes()
    assert header_path().read_bytes() == (CHECKOUT / HEADER_NAME).read_bytes()


def test_the_packaged_copy_comes_first(tmp_path):
    packaged, checkout = tmp_path / "site" / "hgq_chip" / "firmware_templates", tmp_path / "checkout"
    for folder in (packaged, checkout):
        folder.mkdir(parents=True)
        (folder / "t.h").write_text(str(folder))
    assert templates.template_path("t.h", [packaged, checkout]) == packaged / "t.h"
    (packaged / "t.h").unlink()
    assert templates.template_path("t.h", [packaged, checkout]) == checkout / "t.h"


def test_the_default_places_are_the_package_then_the_checkout():
    import hgq_chip

    packaged, checkout = templates.template_folders()
    assert packaged == Path(hgq_chip.__file__).parent / "firmware_templates"
    assert checkout == CHECKOUT


def test_a_missing_template_is_a_typed_error_naming_the_fix(tmp_path):
    with pytest.raises(HGQChipError, match=r"missing: looked in .*reinstall hgq_chip"):
        templates.template_path("nothing.h", [tmp_path / "a", tmp_path / "b"])
