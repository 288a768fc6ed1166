"""Evaluate a checkpoint on an mmdet, mmseg or mmpretrain config's test set (picked by
``default_scope``).

    python -m regnet_backbone.runtime.test CONFIG CHECKPOINT [--work-dir DIR] [--out FILE_OR_DIR]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm,mpi}] [--debug]

A checkpoint that does not fit the config's model is refused (one ``error:`` line saying how
many tensors are missing, unexpected or misshapen, and what the file holds);
``--cfg-options partial_load=True`` loads only what fits, on purpose. ``--debug`` (or
``REGNET_DEBUG=1``) shows tracebacks.
"""
import argparse
import sys
import warnings

from . import cli

# mmengine imports pkg_resources (setuptools < 82); keep its deprecation notice off the terminal.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector, segmentor or classifier.')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics and logs')
    parser.add_argument(
        '--out', help='mmdet, mmpretrain: a .pkl file for the raw predictions; mmseg: a folder '
        'for the predicted label maps')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. test_dataloader.batch_size=2')
    cli.add_run_flags(parser)
    return cli.parse_run_args(parser, argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from .config import configure_testing, load_config
    from .engine import test

    def body():
        cfg = load_config(args.config, args.cfg_options)
        configure_testing(cfg, args.config, args.checkpoint, work_dir=args.work_dir,
                          out=args.out, launcher=args.launcher)
        test(cfg, args.config)

    return cli.run(body, debug=args.debug, on_interrupt=lambda: 'interrupted; nothing to '
                   'resume for a test: run it again.')


if __name__ == '__main__':
    sys.exit(main())
