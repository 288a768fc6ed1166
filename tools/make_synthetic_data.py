"""Write a synthetic shapes dataset: detection/segmentation (COCO instances + semantic PNGs, used
by the tests and `make demo`) or classification (shape and count, one folder per class).

    python tools/make_synthetic_data.py data/synthetic --num-train 200 --num-val 40 --size 256
    python tools/make_synthetic_data.py data/synthetic_cls --task classification

OUT_DIR must be new, empty, or a folder this generator wrote before (it carries the marker file
``.regnet-synthetic``); any other folder is refused with one ``error:`` line and left untouched.
"""
import argparse
import sys

from regnet_backbone.demo.classification import make_synthetic_classification
from regnet_backbone.demo.synthetic import make_synthetic_coco
from regnet_backbone.runtime import cli


# (num_train, num_val, size) per task.
DEFAULTS = {'detection': (16, 4, 128), 'classification': (3000, 300, 64)}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('out_dir', help='output folder: new, empty, or generated before (kept '
                        'when already complete)')
    parser.add_argument('--task', choices=sorted(DEFAULTS), default='detection',
                        help='detection: COCO instances and label maps; classification: one '
                        'of 6 classes (1 or 2 circles, rectangles or triangles) per image, what '
                        'configs/demo/regnetx_200mf_synthetic_cls.py reads')
    parser.add_argument('--num-train', type=int, help='training images (default: detection 16, '
                        'classification 3000)')
    parser.add_argument('--num-val', type=int, help='validation images (default: 4, 300)')
    parser.add_argument('--size', type=int, help='image side in pixels (default: 128, 64)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    num_train, num_val, size = DEFAULTS[args.task]
    args.num_train = num_train if args.num_train is None else args.num_train
    args.num_val = num_val if args.num_val is None else args.num_val
    args.size = size if args.size is None else args.size
    return args


def main(argv=None) -> int:
    args = parse_args(argv)

    def body():
        if args.task == 'classification':
            root = make_synthetic_classification(args.out_dir, num_train=args.num_train,
                                                 num_val=args.num_val, size=args.size,
                                                 seed=args.seed)
            print(f'synthetic classification set ready: {root} ({args.num_train} train / '
                  f'{args.num_val} val images, {args.size}x{args.size}, seed {args.seed})')
            return
        spec = make_synthetic_coco(args.out_dir, num_train=args.num_train, num_val=args.num_val,
                                   size=args.size, seed=args.seed)
        print(f'synthetic dataset ready: {spec.root} ({spec.num_train} train / {spec.num_val} '
              f'val images, {spec.size}x{spec.size}, seed {spec.seed})')

    return cli.run(body, debug=args.debug)


if __name__ == '__main__':
    sys.exit(main())
