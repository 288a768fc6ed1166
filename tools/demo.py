"""`make demo`: train a RegNet Mask R-CNN from scratch on synthetic shapes, evaluate it, draw it.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-root data/synthetic] [--quick]
        [--seg | --seg-only] [--fresh] [--num-images 8] [--procs N]

Steps: (1) generate the synthetic dataset (kept when already there); (2) train
configs/demo/mask_rcnn_regnetx_400mf_fpn_synthetic.py with the engine behind tools/train.py, in
two 1-thread processes of 2 images each on a CPU (gloo; a 4-image step takes ~0.5 s there against
~0.6 s for one 2-thread process), validating with mmdet's CocoMetric (bbox and segm) at
iterations 350, 700, 1050 and 1400; (3) draw predictions on validation images and the training
curves. About 14 minutes on 2 CPU cores. ``--seg`` also trains the UperNet demo (mIoU, about 16
more minutes), ``--seg-only`` only that one; ``--quick`` is a tiny run (small images, 40
iterations) that checks the plumbing.

An interrupted demo resumes from its last checkpoint when run again; ``--fresh`` starts over.
Outputs, under the work dir: ``mask_rcnn/`` (mmengine's logs, config and checkpoints),
``mask_rcnn_predictions.png``, ``mask_rcnn_training.png`` (and ``upernet*`` with ``--seg``).
"""
import argparse
import os
import os.path as osp
import sys
import time
import warnings

# mmengine imports pkg_resources (setuptools < 82); keep its deprecation notice off the terminal.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

from regnet_backbone.runtime import cli  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

DET_CONFIG = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_regnetx_400mf_fpn_synthetic.py')
SEG_CONFIG = osp.join(ROOT, 'configs', 'demo', 'upernet_regnetx_400mf_synthetic.py')
DET_METRICS = ('coco/bbox_mAP', 'coco/segm_mAP')
SEG_METRICS = ('mIoU', )  # mmseg reports percentages
DET_LOSSES = ('loss', 'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask')
SEG_LOSSES = ('loss', 'decode.loss_ce', 'aux.loss_ce')
# What the demo needs to show it learned (bbox mAP, segm mAP, and mIoU as a fraction).
TARGETS = {'coco/bbox_mAP': 0.5, 'coco/segm_mAP': 0.4, 'mIoU': 0.6}
DRAW_SCORE_THR = 0.5  # detections drawn (CocoMetric scores them all, down to 0.05)

FULL = dict(data=dict(num_train=2000, num_val=200, size=256), data_root='data/synthetic',
            work_dir='work_dirs/demo')
QUICK = dict(data=dict(num_train=48, num_val=8, size=128), data_root='data/synthetic_quick',
             work_dir='work_dirs/demo_quick')
QUICK_ITERS, QUICK_WARMUP = 40, 10


def quick_options(max_iters: int = QUICK_ITERS, warmup: int = QUICK_WARMUP) -> dict:
    """``--cfg-options`` turning a demo config into a smoke test of ``max_iters`` iterations."""
    return {
        'train_cfg.max_iters': max_iters,
        'train_cfg.val_interval': max_iters,
        'param_scheduler': [
            dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=warmup),
            dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup, end=max_iters,
                 T_max=max_iters - warmup, eta_min=1e-5),
        ],
        'default_hooks.logger.interval': 5,
        'log_processor.window_size': 5,
        'default_hooks.checkpoint.interval': max_iters // 2,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'val_dataloader.num_workers': 0,
        'val_dataloader.persistent_workers': False,
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a RegNetX-400MF Mask R-CNN (and optionally UperNet) from scratch on '
        'synthetic shapes, evaluate it and draw its predictions.')
    parser.add_argument('--work-dir', help=f'output folder (default {FULL["work_dir"]}, '
                        f'{QUICK["work_dir"]} with --quick)')
    parser.add_argument('--data-root', help=f'synthetic dataset folder, generated when missing '
                        f'(default {FULL["data_root"]}, {QUICK["data_root"]} with --quick)')
    parser.add_argument('--quick', action='store_true',
                        help=f'a smoke test: {QUICK["data"]["size"]}px images, {QUICK_ITERS} '
                        'iterations (about a minute); its metrics mean nothing')
    task = parser.add_mutually_exclusive_group()
    task.add_argument('--seg', action='store_true',
                      help='after Mask R-CNN, also train and evaluate the UperNet demo (mIoU)')
    task.add_argument('--seg-only', action='store_true', help='only the UperNet demo')
    parser.add_argument('--fresh', action='store_true',
                        help='train from scratch even when the work dir holds a checkpoint')
    parser.add_argument('--num-images', type=int, default=8,
                        help='validation images to draw (default 8)')
    cli.add_debug_flag(parser)
    parser.add_argument('--procs', type=int, default=None,
                        help='training processes sharing the batch of 4 images (default: 2 on a '
                        'CPU, where two 1-thread processes beat one 2-thread process; 1 with CUDA)')
    args = parser.parse_args(argv)
    for name in ('num_images', 'procs'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1')
    if args.procs is None:
        import torch
        args.procs = 1 if torch.cuda.is_available() else 2
    return args


def banner(text: str) -> None:
    print(f'\n{"=" * 100}\n== {text}\n{"=" * 100}', flush=True)


def _load(config: str, options: dict, data_root: str):
    from regnet_backbone.runtime.config import load_config
    from regnet_backbone.runtime.datasets import use_data_root
    cfg = load_config(config, options)
    use_data_root(cfg, data_root)
    return cfg


def _train(config: str, options: dict, data_root: str, work_dir: str, resume, launcher: str):
    """The engine behind tools/train.py on a demo config."""
    from regnet_backbone.runtime.config import configure_training
    from regnet_backbone.runtime.dist import finish_distributed
    from regnet_backbone.runtime.engine import train
    cfg = _load(config, options, data_root)
    configure_training(cfg, config, work_dir=work_dir, resume=resume, launcher=launcher)
    train(cfg, config)
    finish_distributed()


def _train_process(rank: int, procs: int, port: int, debug: bool, *task) -> None:
    """One of ``procs`` spawned training processes, with torchrun's environment. It ends as a
    tool does: a user error is its one ``error:`` line and exit status 1."""
    import torch
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(procs),
                      MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    if not torch.cuda.is_available():
        torch.set_num_threads(1)
    status = cli.run(lambda: _train(*task, launcher='pytorch'), debug=debug,
                     on_interrupt=lambda: f'[demo] training process {rank} interrupted')
    if status:
        sys.exit(status)


def run_task(name: str, config: str, spec, work_dir: str, args) -> dict:
    """Train one demo config (resuming when possible), then draw; returns the summary."""
    import torch.multiprocessing as mp
    from mmengine.runner import find_latest_checkpoint

    from regnet_backbone import apis
    from regnet_backbone.demo import visualization as vis
    from regnet_backbone.runtime.config import codebase_of
    from regnet_backbone.runtime.dist import free_port
    from regnet_backbone.runtime.errors import ToolError
    from regnet_backbone.runtime.hooks.atomic_checkpoint import LAST_CHECKPOINT
    from regnet_backbone.runtime.logs import last_metrics, read_scalars

    task_dir = osp.join(work_dir, name)
    options = dict(quick_options() if args.quick else {})
    cfg = _load(config, options, spec.root)
    detection = codebase_of(cfg) == 'mmdet'
    if args.quick and detection:
        # 40 iterations may score nothing above 0.05, and CocoMetric then reports no metric.
        options['model.test_cfg.rcnn.score_thr'] = 0.0
    batch = cfg.train_dataloader.batch_size
    if batch % args.procs:
        raise ToolError(f'--procs {args.procs} does not divide the batch of {batch} images; use '
                        '1, 2 or 4.')
    options['train_dataloader.batch_size'] = batch // args.procs
    iters, every = cfg.train_cfg.max_iters, cfg.train_cfg.val_interval
    saved = (find_latest_checkpoint(task_dir) if not args.fresh and
             osp.isfile(osp.join(task_dir, LAST_CHECKPOINT)) else None)
    finished = saved is not None and osp.basename(saved) == f'iter_{iters}.pth' and \
        osp.isfile(saved)
    resume = 'auto' if saved else None
    if saved:
        print(f'[demo] {task_dir} holds ' + ('the final checkpoint: drawing only' if finished
              else 'a checkpoint: resuming') + ' (--fresh starts over)', flush=True)
    start = time.time()
    if not finished:
        banner(f'{name}: training {iters} iterations from scratch on {spec.num_train} images, '
               f'{batch} per iteration in {args.procs} process(es) (validation on '
               f'{spec.num_val} images every {every}); mmengine logs every '
               f'{cfg.default_hooks.logger.interval}')
        task = (config, options, spec.root, task_dir, resume)
        if args.procs > 1:
            try:
                mp.spawn(_train_process, args=(args.procs, free_port(), args.debug, *task),
                         nprocs=args.procs, join=True)
            except mp.ProcessExitedException as e:  # its error line is above
                raise ToolError(f'training process {e.error_index} stopped with exit status '
                                f'{e.exit_code}.') from None
        else:
            _train(*task, launcher='none')
    train_s = None if finished else time.time() - start

    banner(f'{name}: drawing predictions and training curves')
    checkpoint = find_latest_checkpoint(task_dir)
    model, dataset = apis.load_for_inference(_load(config, options, spec.root), checkpoint)
    classes, palette = dataset.metainfo['classes'], dataset.metainfo['palette']
    results = apis.predict_validation_images(model, dataset, args.num_images)
    if detection:
        pictures, captions = vis.detection_pictures(results, classes, palette, DRAW_SCORE_THR)
    else:
        pictures, captions = vis.segmentation_pictures(results, classes, palette)
    grid = vis.tile(pictures, columns=4 if detection else 3, captions=captions)
    predictions_png = vis.write_png(osp.join(work_dir, f'{name}_predictions.png'), grid)

    train, val = read_scalars(task_dir)
    metric_keys = DET_METRICS if detection else SEG_METRICS
    scale = 1.0 if detection else 0.01
    curves_png = vis.plot_training(
        train, val, osp.join(work_dir, f'{name}_training.png'),
        loss_keys=DET_LOSSES if detection else SEG_LOSSES, metric_keys=metric_keys,
        metric_scale=scale, title=f'{name} (RegNetX-400MF, from scratch, synthetic shapes)')
    metrics = last_metrics(val, metric_keys) or {}
    return dict(name=name, train_s=train_s, work_dir=task_dir, checkpoint=checkpoint,
                predictions=predictions_png, curves=curves_png,
                metrics={k: v * scale for k, v in metrics.items()})


def _interrupted(work_dir: str, tasks, argv) -> str:
    from regnet_backbone.runtime.hooks.atomic_checkpoint import last_complete_checkpoint
    saved = [(name, last_complete_checkpoint(osp.join(work_dir, name))) for name, _ in tasks]
    saved = [f'{name}: {path}' for name, path in saved if path]
    again = ' '.join(['python tools/demo.py'] + list(argv if argv is not None else sys.argv[1:]))
    if not saved:
        return f'interrupted before the first checkpoint; `{again}` starts over.'
    return (f'interrupted; last complete checkpoint(s): {"; ".join(saved)}. `{again}` resumes '
            f'from there (--fresh starts over).')


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    mode = QUICK if args.quick else FULL
    work_dir = osp.abspath(args.work_dir or mode['work_dir'])
    data_root = osp.abspath(args.data_root or mode['data_root'])

    from regnet_backbone.demo.synthetic import make_synthetic_coco
    tasks = [] if args.seg_only else [('mask_rcnn', DET_CONFIG)]
    tasks += [('upernet', SEG_CONFIG)] if args.seg or args.seg_only else []

    def body():
        banner(f'data: synthetic shapes in {data_root} ({mode["data"]["num_train"]} train / '
               f'{mode["data"]["num_val"]} val images, {mode["data"]["size"]}x'
               f'{mode["data"]["size"]}; kept when already complete)')
        spec = make_synthetic_coco(data_root, seed=0, **mode['data'])
        summaries.extend(run_task(name, config, spec, work_dir, args) for name, config in tasks)

    summaries = []
    status = cli.run(body, debug=args.debug,
                     on_interrupt=lambda: _interrupted(work_dir, tasks, argv))
    if status:
        sys.exit(status)

    banner(f'done in {(time.time() - start) / 60:.1f} min' +
           (' (--quick: a smoke test, the metrics mean nothing)' if args.quick else ''))
    missed = []
    for s in summaries:
        trained = ('trained earlier' if s['train_s'] is None
                   else f'trained in {s["train_s"] / 60:.1f} min')
        print(f'{s["name"]}: {trained}; logs in {s["work_dir"]}, final checkpoint '
              f'{s["checkpoint"]}')
        for key, value in s['metrics'].items():
            target = TARGETS.get(key)
            verdict = '' if target is None else f' (target >= {target})'
            print(f'  {key:>16}: {value:.3f}{verdict}')
            if target is not None and value < target:
                missed.append(key)
        if not s['metrics']:
            print('  no validation metrics were logged')
        print(f'  predictions: {s["predictions"]}\n  curves:      {s["curves"]}')
    if missed and not args.quick:
        print(f'note: below target: {", ".join(missed)}')


if __name__ == '__main__':
    main()
