"""What the import-linter contracts (pyproject.toml, `make lint`) cannot see: imports done at run time.

The static layering rules (core never imports Qt, ui/cli never import core.dicom or pynetdicom,
core.dicom never imports the async services) are import-linter contracts, not tests.
"""

from __future__ import annotations

import subprocess
import sys


def test_importing_core_loads_no_qt():
    code = ("import sys, pacsbrowser.core.client, pacsbrowser.core.config, pacsbrowser.core.errors; "
            "import pacsbrowser.cli; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'qasync')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
