"""Build hook: the wheel carries the repository's top-level ``firmware_templates/`` as package data.

The templates have one copy in git, beside the package; ``build_py`` copies every file of
that folder into ``hgq_chip/firmware_templates/`` of the build, so a wheel (and an sdist,
through MANIFEST.in) holds them and ``hgq_chip.conversion.templates`` finds them through
``importlib.resources``. Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
TEMPLATES = "firmware_templates"


def _template_files():
    return [p for p in sorted((ROOT / TEMPLATES).rglob("*")) if p.is_file() and "__pycache__" not in p.parts]


class build_py_with_templates(build_py):
    # An editable install keeps no copy: the package then reads the checkout's folder itself.
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        source = ROOT / TEMPLATES
        if not source.is_dir():
            raise FileNotFoundError(f"{source} is missing: build hgq_chip from a full checkout or its sdist")
        for path in _template_files():
            destination = self._target() / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)

    def _target(self):
        return Path(self.build_lib) / "hgq_chip" / TEMPLATES

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if getattr(self, "editable_mode", False):
            return outputs
        return outputs + [str(self._target() / p.relative_to(ROOT / TEMPLATES)) for p in _template_files()]


setup(cmdclass={"build_py": build_py_with_templates})
