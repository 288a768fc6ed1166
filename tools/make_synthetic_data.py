"""Write the synthetic shapes dataset (COCO instances + semantic PNGs) used by tests and the demo.

    python tools/make_synthetic_data.py data/synthetic --num-train 200 --num-val 40 --size 256
"""
import argparse
import os.path as osp
import sys

# This checkout's library first, even where the shared venv has another checkout installed.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from regnet_backbone.demo.synthetic import make_synthetic_coco  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='output folder (created; kept when already complete)')
    parser.add_argument('--num-train', type=int, default=16, help='training images')
    parser.add_argument('--num-val', type=int, default=4, help='validation images')
    parser.add_argument('--size', type=int, default=128, help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        spec = make_synthetic_coco(args.out_dir, num_train=args.num_train, num_val=args.num_val,
                                   size=args.size, seed=args.seed)
    except (ValueError, OSError, RuntimeError) as e:
        sys.exit(f'error: {e}')
    print(f'synthetic dataset ready: {spec.root} ({spec.num_train} train / {spec.num_val} val '
          f'images, {spec.size}x{spec.size}, seed {spec.seed})')


if __name__ == '__main__':
    main()
