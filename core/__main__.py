import sys

from .cli import main

if __name__ == "__main__":  # not when a spawned worker process imports it (core.reader_train)
    sys.exit(main())
