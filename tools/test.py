"""``python tools/test.py ...`` is ``python -m regnet_backbone.runtime.test ...`` (see its ``--help``)."""
import sys

from regnet_backbone.runtime.test import main

if __name__ == '__main__':
    sys.exit(main())
