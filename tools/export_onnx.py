"""Export a RegNet backbone to ONNX (standard ops only), from an arch name or a config.

    python tools/export_onnx.py regnetx_3.2gf regnetx_3.2gf.onnx \\
        --checkpoint checkpoints/regnetx_3.2gf_rgb.pth --deploy
    python tools/export_onnx.py configs/mask_rcnn_regnetx_3.2gf_fpn.py backbone.onnx \\
        --checkpoint work_dirs/mask_rcnn/epoch_12.pth --deploy --dynamic --shape 1 3 800 1344

The outputs are the feature maps of ``out_indices``, named ``stage{i}``. A config's
``model.backbone`` is used (its ``init_cfg`` is not: pass the weights with ``--checkpoint``, which
reads pycls, torchvision, timm, mmdet and our files, and whole detector checkpoints).
"""
import argparse
import os
import sys
import warnings

# mmengine imports pkg_resources, which warns on stderr at every start; errors stay one line.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

from regnet_backbone.deploy import DEFAULT_OPSET, export_onnx, load_for_export  # noqa: E402
from regnet_backbone.runtime import cli  # noqa: E402


class _Parser(argparse.ArgumentParser):
    """Usage mistakes end like every other error: one ``error:`` line on stderr."""

    def error(self, message):
        self.exit(2, f'error: {message} (see --help)\n')


def parse_args(argv=None) -> argparse.Namespace:
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument('model', help='a preset name (regnetx_3.2gf, ...) or an mmdet/mmseg '
                        'config file (.py) whose model.backbone is a RegNetBackbone')
    parser.add_argument('output', help='the .onnx file to write (replaced atomically)')
    parser.add_argument('--checkpoint', help='weights to load (any format our loader reads)')
    parser.add_argument('--deploy', action='store_true',
                        help='fold BatchNorm into the convs first (switch_to_deploy)')
    parser.add_argument('--dynamic', action='store_true',
                        help='make batch, height and width dynamic axes')
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                        help=f'ONNX opset version (default {DEFAULT_OPSET})')
    parser.add_argument('--shape', type=int, nargs=4, default=(1, 3, 224, 224),
                        metavar=('N', 'C', 'H', 'W'),
                        help='example input shape (default 1 3 224 224)')
    parser.add_argument('--out-indices', type=int, nargs='+',
                        help="stages to output (default: the arch's or the config's)")
    parser.add_argument('--exporter', choices=('torchscript', 'dynamo'), default='torchscript',
                        help="torch's exporter (default torchscript: see "
                        'regnet_backbone/deploy.py for why)')
    cli.add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return cli.run(lambda: export(args), debug=args.debug,
                   on_interrupt=lambda: 'interrupted; nothing was written.')


def export(args) -> int:
    is_config = args.model.endswith('.py') or os.path.sep in args.model
    model = load_for_export(arch=None if is_config else args.model,
                            config=args.model if is_config else None,
                            checkpoint=args.checkpoint, deploy=args.deploy,
                            out_indices=args.out_indices)
    report = export_onnx(model, args.output, tuple(args.shape), opset=args.opset,
                         dynamic=args.dynamic, exporter=args.exporter)
    print(f'weights: {args.checkpoint or "none (random initialisation)"}'
          f'{", BatchNorm folded" if args.deploy else ""}')
    print(f'outputs: {", ".join(report.output_names)} (channels {list(model.out_channels)})')
    shape = 'dynamic batch/height/width' if report.dynamic else f'static shape {list(args.shape)}'
    print(f'opset {report.opset}, {report.exporter} exporter, {shape}')
    print(f'ops (domain ai.onnx): {", ".join(report.op_types)}')
    print(f'wrote {report.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
