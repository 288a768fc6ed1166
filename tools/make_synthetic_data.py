"""Write the synthetic shapes dataset (COCO instances + semantic PNGs) used by tests and the demo.

    python tools/make_synthetic_data.py data/synthetic --num-train 200 --num-val 40 --size 256

OUT_DIR must be new, empty, or a folder this generator wrote before (it carries the marker file
``.regnet-synthetic``); any other folder is refused with one ``error:`` line and left untouched.
"""
import argparse
import os.path as osp
import sys

# This checkout's library first, even where the shared venv has another checkout installed.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from regnet_backbone.demo.synthetic import SyntheticDataError, make_synthetic_coco  # noqa: E402
from regnet_backbone.runtime import cli  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='output folder: new, empty, or generated before (kept '
                        'when already complete)')
    parser.add_argument('--num-train', type=int, default=16, help='training images')
    parser.add_argument('--num-val', type=int, default=4, help='validation images')
    parser.add_argument('--size', type=int, default=128, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    cli.add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def body():
        try:
            spec = make_synthetic_coco(args.out_dir, num_train=args.num_train,
                                       num_val=args.num_val, size=args.size, seed=args.seed)
        except OSError as e:  # permissions, a full disk
            raise SyntheticDataError(f'cannot write {args.out_dir}: {e.strerror or e}') from e
        print(f'synthetic dataset ready: {spec.root} ({spec.num_train} train / {spec.num_val} '
              f'val images, {spec.size}x{spec.size}, seed {spec.seed})')

    return cli.run(body, debug=args.debug)


if __name__ == '__main__':
    sys.exit(main())
