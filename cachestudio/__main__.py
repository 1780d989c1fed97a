import multiprocessing
import sys

from .cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # the lab processes of a frozen (installed) build
    sys.exit(main())
