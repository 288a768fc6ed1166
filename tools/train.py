"""Train an mmdet or mmseg config (picked by the config's ``default_scope``) with a RegNet backbone.

    python tools/train.py configs/mask_rcnn_regnetx_3.2gf_fpn.py [--work-dir DIR] [--amp]
        [--resume [CHECKPOINT]] [--auto-scale-lr] [--cfg-options KEY=VALUE ...]
        [--launcher {none,pytorch,slurm,mpi}]
"""
import argparse
import os
import os.path as osp
import sys
import warnings

# mmengine imports pkg_resources (setuptools < 82); keep its deprecation notice off the terminal.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

# This checkout's library first, even where the shared venv has another checkout installed.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Train a detector or segmentor.')
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
        'train_dataloader.batch_size=4; lists as key="[a,b]"')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def main(argv=None):
    args = parse_args(argv)
    from regnet_backbone.runtime import engine
    try:
        cfg = engine.load_config(args.config, args.cfg_options)
        engine.configure_training(cfg, args.config, work_dir=args.work_dir, amp=args.amp,
                                  resume=args.resume, auto_scale_lr=args.auto_scale_lr,
                                  launcher=args.launcher)
        engine.train(cfg, args.config)
    except engine.ToolError as e:
        sys.exit(f'error: {e}')


if __name__ == '__main__':
    main()
