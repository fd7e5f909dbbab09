"""The frozen bundle's entry point: the same main() as the `pacsbrowser` script."""

import sys

from pacsbrowser.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
