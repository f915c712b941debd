"""The statistics layer must run on a planning host without torch or matplotlib."""

from __future__ import annotations

import subprocess
import sys

BLOCK_AND_IMPORT = """
import sys

class Blocked:
    # Any attempt to import the GPU stack fails, as on a host without it.
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'lightning', 'litgpt', 'engine'):
            raise ImportError(f'blocked: {name}')
        return None

sys.meta_path.insert(0, Blocked())
import designkit.analysis
heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'matplotlib'})
assert not heavy, heavy
"""


def test_analysis_imports_without_torch_and_without_matplotlib():
    subprocess.run([sys.executable, "-c", BLOCK_AND_IMPORT], check=True)
