"""Train an mmdet, mmseg or mmpretrain config (picked by its ``default_scope``) with a RegNet
backbone.

    python -m regnet_backbone.runtime.train configs/mask_rcnn_regnetx_3.2gf_fpn.py [--work-dir DIR] [--amp]
        [--resume [CHECKPOINT]] [--auto-scale-lr] [--cfg-options KEY=VALUE ...]
        [--launcher {none,pytorch,slurm,mpi}] [--debug]

A mistake you can fix (missing data or pretrained weights, a misspelled arch, a checkpoint that
does not fit the model, a work dir in use) ends with one ``error:`` line; ``--debug`` (or
``REGNET_DEBUG=1``) shows the traceback. Ctrl-C ends with one line naming the last complete
checkpoint and the command that resumes from it. The neck's / heads' ``in_channels`` follow
``model.backbone.arch`` (each change is logged).
"""
import argparse
import sys
import warnings

from . import cli

# mmengine imports pkg_resources (setuptools < 82); keep its deprecation notice off the terminal.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Train a detector, segmentor or classifier.')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and checkpoints')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision (GPU)')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate with the total batch size (mmdet)')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from CHECKPOINT, or without a value from the latest checkpoint in the '
        'work dir')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. model.backbone.arch=regnetx_400mf '
        'model.backbone.init_cfg.checkpoint=checkpoints/regnetx_400mf_rgb.pth (in_channels '
        'follow the arch) or train_dataloader.batch_size=4; lists as key="[a,b]"; '
        'partial_load=True loads a checkpoint that fits the model only partly, on purpose')
    cli.add_run_flags(parser)
    return cli.parse_run_args(parser, argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from .config import configure_training, load_config
    from .engine import interrupted_message, train
    state = {}

    def body():
        cfg = load_config(args.config, args.cfg_options)
        configure_training(cfg, args.config, work_dir=args.work_dir, amp=args.amp,
                           resume=args.resume, auto_scale_lr=args.auto_scale_lr,
                           launcher=args.launcher)
        state['cfg'] = cfg
        train(cfg, args.config)

    def interrupted():
        if 'cfg' not in state:
            return 'interrupted.'
        return interrupted_message(state['cfg'], args.config)

    return cli.run(body, debug=args.debug, on_interrupt=interrupted)


if __name__ == '__main__':
    sys.exit(main())
