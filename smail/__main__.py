"""Entry point for `python -m smail` and for the frozen SMail executable."""

import sys

from smail.cli import main

if __name__ == "__main__":
    sys.exit(main())
