"""The statistics layer must run on a planning host without torch or matplotlib."""

from __future__ import annotations

import subprocess
import sys


def test_analysis_imports_without_torch_and_without_matplotlib():
    code = (
        "import sys\n"
        "for name in ('torch', 'lightning', 'litgpt', 'engine'): sys.modules[name] = None\n"
        "import designkit.analysis\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('matplotlib',)]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
