"""``python tools/train.py ...`` is ``python -m regnet_backbone.runtime.train ...`` (see its ``--help``)."""
import sys

from regnet_backbone.runtime.train import main

if __name__ == '__main__':
    sys.exit(main())
