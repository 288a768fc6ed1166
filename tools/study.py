"""Design-space studies on an mmdet / mmseg recipe: sample, train, collect, compare (issue 11).

    python tools/study.py setup BASE_CONFIG WORK_DIR --space SPACE --n N [--flops LO HI]
        [--params LO HI] [--acts LO HI] [--input-size H W] [--seed S] [--metric KEY]
        [--data-root DIR] [--cfg-options KEY=VALUE ...]
    python tools/study.py run WORK_DIR [WORK_DIR ...] [--jobs K] [--retries R]
        [--executor local|slurm|submitit-local] [--threads T] [--retry-failed]
        [--partition P] [--gpus-per-trial G] [--cpus-per-task C] [--time MIN] [--mem-gb M]
    python tools/study.py collect WORK_DIR [WORK_DIR ...]
    python tools/study.py analyze WORK_DIR [WORK_DIR ...] --out REPORT_DIR [--metric KEY]
    python tools/study.py demo [--work-dir work_dirs/study] [--n 8] [--jobs 2]

``demo`` (``make study``) compares RegNetX with AnyNetX_A on the synthetic shapes of ``make demo``
with a short UperNet schedule on a CPU (configs/demo/study/), then prints where the report is.
The library behind it is regnet_backbone.runtime.study (setup / run / collect) and
regnet_backbone.runtime.study_report (analyze).
"""
import argparse
import os.path as osp
import sys
import time
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# This checkout's library first, even where the shared venv has another checkout installed.
sys.path.insert(0, ROOT)

TRAIN_TOOL = osp.join(ROOT, 'tools', 'train.py')
DEMO_CONFIG = osp.join(ROOT, 'configs', 'demo', 'study', 'upernet_regnet_study_synthetic.py')
DEMO_SPACES = ('regnetx', 'anynetx_a')
DEMO_FLOPS = (100e6, 200e6)  # at 224x224 with the 1000-class head (pycls's convention)
# The data of `make demo` (tools/demo.py FULL): shared, generated once.
DEMO_DATA = dict(num_train=2000, num_val=200, size=256, seed=0)

SPACE_HELP = ('anynetx_a..anynetx_e (the paper\'s AnyNetX spaces), regnet (the paper\'s initial '
              'RegNet space), regnetx / regnety (the constrained ranges of the published models). '
              'Bottleneck ratios are stored as this package\'s bottleneck_ratio = w_b / w, the '
              'inverse of the paper\'s b = w / w_b (the paper\'s b = 4 is 0.25 here).')


def _window(parser, name, unit):
    parser.add_argument(f'--{name}', nargs=2, type=float, metavar=('LO', 'HI'),
                        help=f'keep samples whose {unit} lie in [LO, HI] (at --input-size, '
                        '1000-class head: pycls\'s convention); e.g. 360e6 400e6')


def parse_args(argv=None):
    from mmengine.config import DictAction

    from regnet_backbone.design.results import ERROR_RULES
    parser = argparse.ArgumentParser(
        description='Design-space studies (the RegNet paper\'s method) on a detection or '
        'segmentation recipe: setup -> run -> collect -> analyze.')
    sub = parser.add_subparsers(dest='command', required=True)

    p = sub.add_parser('setup', help='sample archs and write one trial config per sample')
    p.add_argument('base_config', help='mmdet/mmseg config with a RegNetBackbone')
    p.add_argument('work_dir', help='the study folder (study.json, trials/)')
    p.add_argument('--space', required=True, help=SPACE_HELP)
    p.add_argument('--n', type=int, required=True, help='number of trials')
    _window(p, 'flops', 'flops (multiply-adds)')
    _window(p, 'params', 'parameter counts')
    _window(p, 'acts', 'activation counts')
    p.add_argument('--input-size', nargs=2, type=int, default=(224, 224), metavar=('H', 'W'),
                   help='input size the windows are counted at (default 224 224)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--metric', help='validation metric to rank by (default from the config\'s '
                   'evaluator: coco/bbox_mAP for CocoMetric, mIoU for IoUMetric, accuracy/top1 '
                   'for mmpretrain)')
    p.add_argument('--data-root', help='point the config\'s datasets at this folder')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override base config settings, e.g. train_cfg.max_iters=1000')

    p = sub.add_parser('run', help='train every unfinished trial (resumable)')
    p.add_argument('work_dirs', nargs='+', metavar='WORK_DIR')
    p.add_argument('--jobs', type=int, default=1, help='trials trained at once (default 1)')
    p.add_argument('--retries', type=int, default=1,
                   help='extra attempts for a failed trial, each resuming from its last '
                   'checkpoint (default 1)')
    p.add_argument('--executor', choices=('local', 'slurm', 'submitit-local'), default='local',
                   help='local: tools/train.py subprocesses on this machine; slurm: a SLURM job '
                   'array through submitit; submitit-local: the slurm code path on this machine')
    p.add_argument('--threads', type=int,
                   help='OMP_NUM_THREADS per trial (local default: CPU count / --jobs)')
    p.add_argument('--retry-failed', action='store_true',
                   help='also train the trials that failed in an earlier run')
    s = p.add_argument_group('slurm (with --executor slurm)')
    s.add_argument('--partition', help='SLURM partition')
    s.add_argument('--gpus-per-trial', type=int, default=1,
                   help='GPUs (one task each) per trial; > 1 runs tools/train.py --launcher slurm')
    s.add_argument('--cpus-per-task', type=int, default=8)
    s.add_argument('--time', type=int, default=240, help='time limit per trial in minutes')
    s.add_argument('--mem-gb', type=int)
    s.add_argument('--account')
    s.add_argument('--qos')
    s.add_argument('--constraint')

    p = sub.add_parser('collect', help='write WORK_DIR/results.json from the trials\' logs')
    p.add_argument('work_dirs', nargs='+', metavar='WORK_DIR')

    p = sub.add_parser('analyze', help='compare studies: a markdown report with PNGs')
    p.add_argument('work_dirs', nargs='+', metavar='WORK_DIR')
    p.add_argument('--out', required=True, help='report folder (report.md and PNGs)')
    p.add_argument('--metric', help='metric to rank by (default: the studies\' own); '
                   'errors in percent: ' + ERROR_RULES)
    p.add_argument('--scale', choices=('fraction', 'percent'),
                   help='how the metric is reported, for keys not listed under --metric')

    p = sub.add_parser('demo', help='`make study`: RegNetX vs AnyNetX_A on the synthetic shapes '
                       '(CPU, about 30 minutes on 2 cores)')
    p.add_argument('--work-dir', default='work_dirs/study')
    p.add_argument('--data-root', default='data/synthetic',
                   help='the synthetic data of `make demo` (generated when missing)')
    p.add_argument('--config', default=DEMO_CONFIG, help='the trial recipe')
    p.add_argument('--n', type=int, default=8, help='trials per design space (default 8)')
    p.add_argument('--jobs', type=int, default=2, help='trials at once (default 2, 1 thread '
                   'each)')
    p.add_argument('--flops', nargs=2, type=float, default=DEMO_FLOPS, metavar=('LO', 'HI'))
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override the trial recipe, e.g. train_cfg.max_iters=100')
    return parser.parse_args(argv)


def _minutes(seconds):
    return f'{seconds / 60:.1f} min' if seconds is not None else '?'


def print_progress(event) -> None:
    where = f'{event.study}/{event.trial}'
    if event.kind == 'skip':
        what = f'{where} {"finished" if event.error is None else "failed"} earlier: skipped'
    elif event.kind == 'start':
        what = f'{where} started' + (f' (attempt {event.attempt})' if event.attempt > 1 else '')
    elif event.kind == 'done':
        metric = f' ({event.metric[0]} {event.metric[1]:.4g})' if event.metric else ''
        what = f'{where} done in {_minutes(event.wall_time)}{metric}'
    else:
        last = (event.error or '').strip().splitlines()
        last = last[-1] if last else 'unknown error'
        what = (f'{where} attempt {event.attempt} failed, retrying: {last}' if event.kind == 'retry'
                else f'{where} FAILED: {last}')
    eta = f' | ETA {_minutes(event.eta_s)}' if event.eta_s is not None else ''
    print(f'[study] {what} | {event.done} done, {event.failed} failed, {event.running} running, '
          f'{event.pending} queued{eta}', flush=True)


def cmd_setup(args):
    from regnet_backbone.runtime import study
    s = study.setup(args.base_config, args.work_dir, space=args.space, n=args.n, seed=args.seed,
                    flops=args.flops, params=args.params, acts=args.acts,
                    input_size=tuple(args.input_size), cfg_options=args.cfg_options,
                    metric=args.metric, data_root=args.data_root)
    flops = [t['flops'] / 1e6 for t in s['trials']]
    print(f'[study] {len(s["trials"])} trials of {s["space"]} in {args.work_dir}/trials '
          f'({min(flops):.0f}-{max(flops):.0f} MF), ranked by {s["metric"]}')


def _run(work_dirs, **kwargs):
    from regnet_backbone.runtime import study
    start = time.time()
    for event in study.run(work_dirs, train_tool=TRAIN_TOOL, **kwargs):
        print_progress(event)
    return time.time() - start


def cmd_run(args):
    from regnet_backbone.runtime import study
    slurm = study.SlurmOptions(partition=args.partition, gpus_per_trial=args.gpus_per_trial,
                               cpus_per_task=args.cpus_per_task, time_min=args.time,
                               mem_gb=args.mem_gb, account=args.account, qos=args.qos,
                               constraint=args.constraint)
    took = _run(args.work_dirs, jobs=args.jobs, retries=args.retries, executor=args.executor,
                retry_failed=args.retry_failed, threads=args.threads, slurm=slurm)
    print(f'[study] run finished in {_minutes(took)}; next: tools/study.py collect '
          f'{" ".join(args.work_dirs)}')


def cmd_collect(args):
    from regnet_backbone.runtime import study
    for work_dir in args.work_dirs:
        results = study.collect(work_dir)
        counts = {}
        for t in results['trials']:
            counts[t['status']] = counts.get(t['status'], 0) + 1
        print(f'[study] {osp.join(work_dir, study.RESULTS_FILE)}: ' +
              ', '.join(f'{v} {k}' for k, v in sorted(counts.items())))


def cmd_analyze(args):
    from regnet_backbone.runtime import study_report
    path = study_report.analyze(args.work_dirs, args.out, metric=args.metric, scale=args.scale)
    print(f'[study] report: {path}')


def cmd_demo(args):
    from regnet_backbone.demo.synthetic import make_synthetic_coco
    from regnet_backbone.runtime import study, study_report
    start = time.time()
    print(f'[study] data: {args.data_root} (the synthetic shapes of `make demo`; generated when '
          'missing)', flush=True)
    make_synthetic_coco(args.data_root, **DEMO_DATA)
    work_dirs = []
    for space in DEMO_SPACES:
        work_dir = osp.join(args.work_dir, space)
        s = study.setup(args.config, work_dir, space=space, n=args.n, seed=args.seed,
                        flops=tuple(args.flops), cfg_options=args.cfg_options,
                        data_root=args.data_root)
        print(f'[study] {space}: {len(s["trials"])} trials in {work_dir} '
              f'(flops {args.flops[0] / 1e6:.0f}-{args.flops[1] / 1e6:.0f} MF at 224x224)',
              flush=True)
        work_dirs.append(work_dir)
    took = _run(work_dirs, jobs=args.jobs, retries=1, threads=1)
    for work_dir in work_dirs:
        study.collect(work_dir)
    path = study_report.analyze(work_dirs, osp.join(args.work_dir, 'report'))
    print(f'[study] trained in {_minutes(took)}, {_minutes(time.time() - start)} in all')
    print(f'[study] report: {path}')


def main(argv=None):
    args = parse_args(argv)
    from regnet_backbone.runtime.engine import ToolError
    try:
        {'setup': cmd_setup, 'run': cmd_run, 'collect': cmd_collect, 'analyze': cmd_analyze,
         'demo': cmd_demo}[args.command](args)
    except (ToolError, ValueError, OSError) as e:
        sys.exit(f'error: {e}')
    except KeyboardInterrupt:
        sys.exit('interrupted: run the same command again to resume')


if __name__ == '__main__':
    main()
