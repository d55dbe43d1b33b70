"""`import vqkit` needs only the core dependencies; the extras are imported where they are used."""

import subprocess
import sys

# tqdm is not listed: huggingface-hub depends on it, so it is always there.
EXTRAS = ["numpy", "PIL", "sklearn", "skimage", "matplotlib", "pytest_benchmark"]


def test_import_vqkit_without_extras():
    blocker = "; ".join(f"sys.modules[{name!r}] = None" for name in EXTRAS)
    code = f"import sys; {blocker}; import vqkit; print(len(vqkit.list_registered()))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) > 0
