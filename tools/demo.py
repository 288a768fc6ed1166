"""`make demo`: train a small RegNet Mask R-CNN on synthetic shapes (not yet available)."""
import sys

if __name__ == '__main__':
    sys.exit('demo not yet available: the synthetic-data Mask R-CNN demo is tracked in issue 6. '
             'Run `make test` to check the installation.')
