"""``python -m devserver``: run the local authorization server (see devserver.cli.main)."""

import sys

from devserver.cli import main

if __name__ == "__main__":
    sys.exit(main())
