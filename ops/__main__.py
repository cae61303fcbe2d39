"""``python -m ops …``: the ``crmsync`` command line (``.venv/bin/crmsync``) without the script."""

from ops.cli import main

main()
