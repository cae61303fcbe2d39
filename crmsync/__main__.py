"""The command line moved to the operator layer (``ops``), which this engine package must not
import: run ``.venv/bin/crmsync …`` or ``python -m ops …``."""

import sys

sys.exit("the crmsync command line is `.venv/bin/crmsync …` or `python -m ops …`")
