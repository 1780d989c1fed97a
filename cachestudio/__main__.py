"""``python -m cachestudio``, and the entry script of the PyInstaller bundle.

Absolute imports only: PyInstaller runs this file as a top-level script, where a relative
import fails ("attempted relative import with no known parent package").
"""

import multiprocessing
import sys


def _main() -> int:
    multiprocessing.freeze_support()  # the lab processes of a frozen (installed) build
    if len(sys.argv) == 3 and sys.argv[1] == "--bench-first-paint":
        # A child of `cachestudio bench --gui` (cachestudio.ui.first_paint): before the
        # command line's own imports, so that they are not outside what it times.
        from cachestudio.ui.first_paint import main as first_paint

        return first_paint(sys.argv[2])
    from cachestudio.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(_main())
