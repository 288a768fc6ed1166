"""Convert pycls / torchvision / timm / mmdet RegNet weights for ``RegNetBackbone``.

    python tools/convert_pretrained.py RegNetX-3.2GF_dds_8gpu.pyth regnetx_3.2gf.pth
    python tools/convert_pretrained.py regnet_x_400mf.pth out.pth --src torchvision --arch regnetx_400mf_tv
    python tools/convert_pretrained.py ours.pth theirs.pth --to timm      # export the other way

    python tools/convert_pretrained.py work_dirs/mask_rcnn/iter_90000.pth backbone.pth  # Runner
    python tools/convert_pretrained.py mask_rcnn_regnetx-3.2GF_fpn_1x_coco.pth ours.pth --whole-model

The output (``{'state_dict', 'meta'}``) expects RGB input normalised with the ImageNet mean/std on
the 0-255 scale, whatever the source's channel order was (``--channel-order BGR`` keeps pycls's
and mmdet's BGR); ``meta['channel_order']`` records it. Load it with
``init_cfg=dict(type='Pretrained', checkpoint=OUTPUT)``.

``--whole-model`` translates a whole mmdet detector or mmpretrain classifier built on their
``RegNet``: the backbone's tensors are renamed and every neck and head tensor is kept; nothing is
flipped. ``meta`` records the channel order the detector was trained on, read from the config text
the file carries (or given with ``--channel-order``). Use it as ``load_from`` or as
tools/test.py's CHECKPOINT with the same config, ``type='RegNet'`` changed to
``type='RegNetBackbone'`` (load_from and tools/test.py also translate such files on the fly).

The output folder is created when missing. With ``--force`` an existing OUTPUT is replaced
atomically; a symlink is written through to its target, and a folder, FIFO or device is
refused. Errors are one ``error:`` line (``--debug`` or ``REGNET_DEBUG=1`` for the traceback);
tensors holding NaN or Inf are reported on a ``warning:`` line.
"""
import argparse
import sys

from regnet_backbone.checkpoints.errors import CheckpointError
from regnet_backbone.checkpoints.files import convert_file
from regnet_backbone.checkpoints.formats import LAYOUTS, OURS, SOURCE_FORMATS
from regnet_backbone.checkpoints.model import convert_model_file
from regnet_backbone.models.backbone import CHANNEL_ORDERS
from regnet_backbone.runtime import cli


class _Parser(argparse.ArgumentParser):
    """Usage mistakes end like every other error: one ``error:`` line on stderr."""

    def error(self, message):
        self.exit(2, f'error: {message} (see --help)\n')


def parse_args(argv=None) -> argparse.Namespace:
    parser = _Parser(
        description='Convert a RegNet checkpoint to RegNetBackbone names (RGB input).')
    parser.add_argument('input', help='checkpoint to read (.pth, .pt, .pyth, .safetensors)')
    parser.add_argument('output', help='file to write (.pth, or .safetensors for our format)')
    parser.add_argument('--src', default='auto', choices=('auto', ) + SOURCE_FORMATS,
                        help='layout of INPUT (default: detect it from the tensor names)')
    parser.add_argument('--arch', help='preset the checkpoint must be, e.g. regnetx_3.2gf')
    parser.add_argument('--to', default=OURS, choices=tuple(LAYOUTS),
                        help=f'layout to write (default: {OURS}; others export back)')
    parser.add_argument('--channel-order', choices=CHANNEL_ORDERS,
                        help='colour order the written first conv expects (default: RGB); with '
                        '--whole-model: the order the model was trained on, recorded in meta '
                        '(default: read from the file\'s own config text)')
    parser.add_argument('--whole-model', action='store_true',
                        help='translate a whole mmdet detector / mmpretrain classifier built on '
                        'their RegNet (backbone renamed, neck and heads kept) instead of '
                        'extracting its backbone')
    parser.add_argument('--force', action='store_true',
                        help='overwrite OUTPUT if it exists (a symlink is written through)')
    cli.add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return cli.run(lambda: convert(args), debug=args.debug,
                   on_interrupt=lambda: 'interrupted; nothing was written.')


def convert(args) -> int:
    if args.whole_model:
        return convert_model(args)
    report = convert_file(args.input, args.output, src=args.src, arch=args.arch,
                          force=args.force, to=args.to,
                          channel_order=args.channel_order or 'RGB')
    if report.nonfinite:
        names = ', '.join(report.nonfinite[:3]) + (' ...' if len(report.nonfinite) > 3 else '')
        print(f'warning: {len(report.nonfinite)} tensors hold NaN or Inf ({names}); the source '
              f'training may have diverged. Written anyway.', file=sys.stderr)
    arch = report.arch or f'custom ({report.architecture.describe()})'
    dropped = ', '.join(report.dropped[:4]) + (' ...' if len(report.dropped) > 4 else '')
    print(f'format: {report.source_format} -> {report.target_format}')
    print(f'arch: {arch}')
    print(f'tensors converted: {report.num_tensors}')
    print(f'tensors dropped: {len(report.dropped)}' + (f' ({dropped})' if dropped else ''))
    if report.filled:
        print(f'num_batches_tracked created: {len(report.filled)}')
    print(f'wrote {report.output}')
    return 0


def convert_model(args) -> int:
    if args.to != OURS or args.arch or args.src not in ('auto', 'mmdet'):
        raise CheckpointError('--whole-model translates mmdet\'s RegNet names to ours; it takes '
                             'no --to, --arch or --src other than mmdet.')
    found = convert_model_file(args.input, args.output, channel_order=args.channel_order,
                               force=args.force)
    for part in found:
        order = (f'trained on {part.channel_order} input' if part.channel_order else
                 'channel order not recorded in the file (--channel-order records the one it '
                 'was trained with)')
        print(f'backbone {part.prefix!r}: {part.renamed} tensors renamed mmdet -> {OURS}; '
              f'{order}')
    print('neck and head tensors: kept as they are')
    print(f'wrote {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
