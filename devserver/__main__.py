"""``python -m devserver``: run the local authorization server (see devserver.server.main)."""

import sys

from devserver.server import main

if __name__ == "__main__":
    sys.exit(main())
