"""Allow ``python -m augtool``."""

from __future__ import annotations

from augtool.cli.app import main

if __name__ == "__main__":
    main()
