"""The package's public names: lazy (no Keras at import) and never shadowed by a submodule."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types

import pytest

LAZY_PACKAGES = ["hgq_chip", "hgq_chip.conversion", "hgq_chip.qkeras_import", "hgq_chip.report"]


def test_importing_the_package_and_its_cli_loads_no_keras():
    script = (
        "import sys, hgq_chip, hgq_chip.cli, hgq_chip.estimation, hgq_chip.report, hgq_chip.qkeras_import\n"
        "sys.exit(','.join(sorted({'keras', 'tensorflow', 'hls4ml'} & set(sys.modules))) or None)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"imported at start-up: {run.stderr.strip()}"


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_exported_name_resolves_to_the_object_not_a_module(package):
    module = importlib.import_module(package)
    # Import every submodule first: a submodule named like an export would rebind the name.
    for name in ("api", "calibration", "conversion.project", "conversion.verification", "estimation.estimate",
                 "estimation.synth", "qkeras_import.loading", "report.page", "training"):
        importlib.import_module(f"hgq_chip.{name}")
    for name in module.__all__:
        value = getattr(module, name)
        assert name in dir(module)
        if name != "training":
            assert not isinstance(value, types.ModuleType), f"{package}.{name} is a module"
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        module.nonexistent  # noqa: B018


def test_api_names_are_the_functions_users_call():
    import hgq_chip
    from hgq_chip import api, calibration, estimation

    assert hgq_chip.convert is api.convert and hgq_chip.verify is api.verify
    assert hgq_chip.calibrate is calibration.calibrate and hgq_chip.estimate is estimation.estimate
