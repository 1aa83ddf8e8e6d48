"""`python -m analysis`: the same as `dln validate`."""
import sys

from dln.cli import main

if __name__ == "__main__":
    sys.exit(main(["validate", *sys.argv[1:]]))
