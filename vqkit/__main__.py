"""``python -m vqkit``: the same as the ``vqkit`` command."""

import sys

from vqkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
