"""Design-space studies on an mmdet / mmseg recipe: sample, train, collect, compare.

    python tools/study.py setup BASE_CONFIG WORK_DIR --space SPACE --n N [--flops LO HI]
        [--params LO HI] [--acts LO HI] [--input-size H W] [--seed S] [--metric KEY]
        [--data-root DIR] [--cfg-options KEY=VALUE ...] [--init scratch | --pretrain CLS_CONFIG
        [--pretrain-cfg-options KEY=VALUE ...]] [--repeats K]
    python tools/study.py run WORK_DIR [WORK_DIR ...] [--jobs K] [--retries R]
        [--executor local|slurm] [--threads T] [--retry-failed]
        [--partition P] [--gpus-per-trial G] [--cpus-per-task C] [--time MIN] [--mem-gb M]
    python tools/study.py collect WORK_DIR [WORK_DIR ...]
    python tools/study.py analyze WORK_DIR [WORK_DIR ...] --out REPORT_DIR [--metric KEY]
    python tools/study.py demo [--task fashion-mnist|synthetic-upernet] [--seed S]
        [--out work_dirs/study] [--n 24] [--repeats 4] [--jobs 2]
    python tools/study.py refinement [--seed S] [--out work_dirs/refinement] [--executor slurm]

``demo`` (``make study``) compares RegNetX with AnyNetX_A (100-200 MF at 224x224) on the real
Fashion-MNIST (Debian's dataset-fashion-mnist) with a 400-step classification recipe on a CPU
(configs/demo/study/), then prints the verdict and where the report and summary.json are;
``--task synthetic-upernet`` runs the UperNet study on the synthetic shapes of ``make demo``.
``refinement`` (``make study-refinement``) runs the paper's refinement AnyNetX_A -> ... -> RegNet
on the same recipe and judges each step (regnet_backbone/study/refinement.py).
The library behind it is the package regnet_backbone.study, one module per stage:
prepare.py (setup), launch.py (run), results.py (collect), report.py (analyze). A mistake the
user can fix ends with one ``error:`` line (``--debug``: the traceback); Ctrl-C stops a run,
which the same command resumes.
"""
import argparse
import os.path as osp
import sys
import time
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

from regnet_backbone.runtime import cli  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

DEMO_SPACES = ('regnetx', 'anynetx_a')
DEMO_FLOPS = (100e6, 200e6)  # at 224x224 with the 1000-class head (pycls's convention)
# `tools/study.py demo --task ...`: the recipe, its data, trials per space and RegNetX reruns.
DEMO_TASKS = {
    'fashion-mnist': dict(
        config=osp.join(ROOT, 'configs', 'demo', 'study', 'regnet_study_fashion_mnist.py'),
        data_root='data/fashion_mnist', n=24, repeats=4),
    'synthetic-upernet': dict(
        config=osp.join(ROOT, 'configs', 'demo', 'study', 'upernet_regnet_study_synthetic.py'),
        data_root='data/synthetic', n=8, repeats=0),
}
# `tools/study.py refinement`: the `make study` recipe with the refinement's schedule.
REFINEMENT_CONFIG = osp.join(ROOT, 'configs', 'demo', 'study',
                             'regnet_refinement_fashion_mnist.py')
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


def _execution(parser, jobs: int = 1, threads=None):
    """How trials run: the options of `run`, `demo` and `refinement`."""
    parser.add_argument('--jobs', type=int, default=jobs,
                        help=f'trials trained at once (default {jobs})')
    parser.add_argument('--retries', type=int, default=1,
                        help='extra attempts for a failed trial, each resuming from its last '
                        'checkpoint (default 1)')
    parser.add_argument('--executor', choices=('local', 'slurm'), default='local',
                        help='local (default): --jobs long-lived worker processes on this '
                        'machine that train trial after trial (on CUDA when the machine has '
                        'it); slurm: a SLURM job array through submitit, one job per attempt')
    parser.add_argument('--threads', type=int, default=threads,
                        help='OMP_NUM_THREADS per trial (local default: ' +
                        (f'{threads})' if threads else 'CPU count / --jobs)'))
    s = parser.add_argument_group('slurm (with --executor slurm)')
    s.add_argument('--partition', help='SLURM partition')
    s.add_argument('--gpus-per-trial', type=int, default=1,
                   help='GPUs (one task each) per trial; > 1 trains with --launcher slurm')
    s.add_argument('--cpus-per-task', type=int, default=8)
    s.add_argument('--time', type=int, default=240, help='time limit per trial in minutes')
    s.add_argument('--mem-gb', type=int)
    s.add_argument('--account')
    s.add_argument('--qos')
    s.add_argument('--constraint')


def parse_args(argv=None):
    from mmengine.config import DictAction

    from regnet_backbone.design.results import ERROR_RULES
    parser = argparse.ArgumentParser(
        description='Design-space studies (the RegNet paper\'s method) on a detection or '
        'segmentation recipe: setup -> run -> collect -> analyze.')
    common = argparse.ArgumentParser(add_help=False)
    cli.add_debug_flag(common)
    sub = parser.add_subparsers(dest='command', required=True)

    def command(name, *parents, **kwargs):
        return sub.add_parser(name, parents=[common, *parents], **kwargs)

    p = command('setup', help='sample archs and write one trial config per sample')
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
    init = p.add_mutually_exclusive_group()
    init.add_argument('--init', choices=('scratch', ), help='scratch: train each trial from '
                      'random weights with nothing frozen (frozen_stages=-1, norm_eval=False, '
                      'trainable backbone and neck norms; BN becomes SyncBN, which mmengine '
                      'reverts to BN when a run is not distributed); the schedule is kept. '
                      'Needed for a fine-tuning recipe (frozen stages, BN in eval mode), which '
                      'is refused otherwise')
    init.add_argument('--pretrain', metavar='CLS_CONFIG',
                      help='two-stage trials: pretrain each sampled backbone with this '
                      'mmpretrain config, convert it, then fine-tune BASE_CONFIG from it with '
                      'its own frozen_stages / norm_eval (e.g. '
                      'configs/regnetx_400mf_1xb128-10e_in1k.py, the paper\'s 10 epochs)')
    p.add_argument('--pretrain-cfg-options', nargs='+', action=DictAction,
                   help='override CLS_CONFIG settings, e.g. data_root=... or '
                   'train_cfg.max_epochs=1')
    p.add_argument('--repeats', type=int, default=0, metavar='K',
                   help='train the first K samples once more with another training seed '
                   '(trials trial_<i>_r1): the seed-noise floor of the report (default 0)')

    p = command('run', help='train every unfinished trial (resumable)')
    _execution(p)
    p.add_argument('work_dirs', nargs='+', metavar='WORK_DIR')
    p.add_argument('--retry-failed', action='store_true',
                   help='also train the trials that failed in an earlier run')

    p = command('collect', help='write WORK_DIR/results.json from the trials\' logs')
    p.add_argument('work_dirs', nargs='+', metavar='WORK_DIR')

    p = command('analyze', help='compare studies: a markdown report with PNGs')
    p.add_argument('work_dirs', nargs='+', metavar='WORK_DIR')
    p.add_argument('--out', required=True, help='report folder (report.md and PNGs)')
    p.add_argument('--metric', help='metric to rank by (default: the studies\' own); '
                   'errors in percent: ' + ERROR_RULES)
    p.add_argument('--scale', choices=('fraction', 'percent'),
                   help='how the metric is reported, for keys not listed under --metric')

    # The seed and data of `demo` and `refinement`.
    demo = argparse.ArgumentParser(add_help=False)
    demo.add_argument('--seed', type=int, default=0,
                      help='the sampling seed: the same protocol with other networks (default 0)')
    demo.add_argument('--data-root', help='the data (default: data/fashion_mnist, unpacked from '
                      '/usr/share/datasets/fashion-mnist; data/synthetic for synthetic-upernet, '
                      'generated when missing)')
    demo.add_argument('--download', action='store_true',
                      help='fashion-mnist without Debian\'s dataset-fashion-mnist: let '
                      'mmpretrain download the files (needs the internet)')
    p = command('demo', demo, help='`make study`: RegNetX vs AnyNetX_A on the real Fashion-MNIST '
                '(CPU, 1 thread per trial, 2 trials at a time), then the report')
    p.add_argument('--task', choices=tuple(DEMO_TASKS), default='fashion-mnist',
                   help='fashion-mnist (default): a classifier on Debian\'s Fashion-MNIST, '
                   f'{DEMO_TASKS["fashion-mnist"]["n"]} trials a space plus '
                   f'{DEMO_TASKS["fashion-mnist"]["repeats"]} RegNetX reruns with another seed '
                   '(the seed-noise floor); synthetic-upernet: the UperNet study on the '
                   'synthetic shapes of `make demo`')
    p.add_argument('--out', '--work-dir', dest='out', default='work_dirs/study',
                   help='the studies (OUT/regnetx, OUT/anynetx_a) and the report (OUT/report)')
    p.add_argument('--config', help='the trial recipe (default: the task\'s, in '
                   'configs/demo/study/)')
    p.add_argument('--n', type=int, help='trials per design space (default: 24 for '
                   'fashion-mnist, 8 for synthetic-upernet)')
    p.add_argument('--repeats', type=int, help='RegNetX samples trained once more with another '
                   'seed (default: 4 for fashion-mnist, 0 for synthetic-upernet)')
    _execution(p, jobs=2, threads=1)
    p.add_argument('--flops', nargs=2, type=float, default=DEMO_FLOPS, metavar=('LO', 'HI'))
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override the trial recipe, e.g. train_cfg.max_iters=100')

    from regnet_backbone.study import refinement
    p = command('refinement', demo, help='`make study-refinement`: the paper\'s refinement '
                'AnyNetX_A -> B -> C -> D -> E -> RegNet on the real Fashion-MNIST, one verdict '
                'per step (the protocol is fixed in regnet_backbone/study/refinement.py)')
    _execution(p, jobs=2, threads=1)
    p.add_argument('--out', '--work-dir', dest='out', default='work_dirs/refinement',
                   help='one study per space (OUT/anynetx_a, ...) and the report files in OUT')
    p.add_argument('--config', default=REFINEMENT_CONFIG,
                   help='the trial recipe (default: make study\'s with 60 steps, '
                   'configs/demo/study/regnet_refinement_fashion_mnist.py; make study\'s own '
                   '400 steps, regnet_study_fashion_mnist.py, take about 3.8 h on 2 cores)')
    p.add_argument('--n', type=int, default=refinement.TRIALS_PER_SPACE,
                   help=f'trials per space (the protocol: {refinement.TRIALS_PER_SPACE}; fewer '
                   'only to try the command)')
    p.add_argument('--repeats', type=int, default=refinement.RERUNS_PER_SPACE,
                   help=f'samples of each space trained again with another seed (the protocol: '
                   f'{refinement.RERUNS_PER_SPACE})')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override the trial recipe, e.g. model.backbone.norm_cfg.type=SyncBN; '
                   'not for a run whose verdicts you report')
    return parser.parse_args(argv)


def _minutes(seconds):
    from regnet_backbone.study.launch import minutes
    return minutes(seconds)


def cmd_setup(args):
    from regnet_backbone import study
    s = study.setup(args.base_config, args.work_dir, space=args.space, n=args.n, seed=args.seed,
                    flops=args.flops, params=args.params, acts=args.acts,
                    input_size=tuple(args.input_size), cfg_options=args.cfg_options,
                    metric=args.metric, data_root=args.data_root, init=args.init,
                    pretrain=args.pretrain, pretrain_cfg_options=args.pretrain_cfg_options,
                    repeats=args.repeats)
    flops = [t['flops'] / 1e6 for t in s['trials']]
    repeats = (f' ({s["n"]} samples + {s["repeats"]} repeat{"s" if s["repeats"] > 1 else ""} '
               'with another seed)' if s.get('repeats') else '')
    print(f'[study] {len(s["trials"])} trials of {s["space"]}{repeats} in {args.work_dir}/trials '
          f'({min(flops):.0f}-{max(flops):.0f} MF), ranked by {s["metric"]}')
    print(f'[study] {describe_init(s)}')
    rejected = s.get('rejected') or {}
    if rejected.get('count'):
        reasons = study.reasons_text(rejected['reasons'])
        print(f'[study] {rejected["count"]} sampled archs cannot be built with the recipe and '
              f'were drawn again: {reasons}')


def describe_init(s) -> str:
    """One line: how the study's trials get their backbone weights, and for how long they
    train."""
    schedule = (s.get('schedule') or {}).get('text', 'the recipe\'s schedule')
    init = s.get('init', 'recipe')
    if init == 'scratch':
        return (f'init: scratch (random weights, nothing frozen, trainable norms); the recipe\'s '
                f'schedule is kept: {schedule}')
    if init == 'pretrain':
        first = (s['schedule'].get('pretrain') or {}).get('text', '?')
        return (f'init: pretrain: each trial trains its backbone with '
                f'{osp.basename(s["pretrain_config"])} ({first}), converts it and fine-tunes '
                f'({schedule})')
    return f'init: the recipe as written (it trains every weight from random init); {schedule}'


def _run(work_dirs, **kwargs):
    """Train the studies' trials, printing progress; returns (seconds, trials trained)."""
    from regnet_backbone import study
    start, trained = time.time(), 0
    for event in study.run(work_dirs, **kwargs):
        print(f'[study] {event}', flush=True)
        trained += event.kind == 'done'
    return time.time() - start, trained


def _run_options(args) -> dict:
    """study.run's keyword arguments from the options of :func:`_execution`."""
    from regnet_backbone import study
    slurm = study.SlurmOptions(partition=args.partition, gpus_per_trial=args.gpus_per_trial,
                               cpus_per_task=args.cpus_per_task, time_min=args.time,
                               mem_gb=args.mem_gb, account=args.account, qos=args.qos,
                               constraint=args.constraint)
    return dict(jobs=args.jobs, retries=args.retries, executor=args.executor,
                threads=args.threads, slurm=slurm)


def cmd_run(args):
    took, _ = _run(args.work_dirs, retry_failed=args.retry_failed, **_run_options(args))
    print(f'[study] run finished in {_minutes(took)}; next: tools/study.py collect '
          f'{" ".join(args.work_dirs)}')


def cmd_collect(args):
    from regnet_backbone import study
    for work_dir in args.work_dirs:
        results = study.collect(work_dir)
        counts = {}
        for t in results['trials']:
            counts[t['status']] = counts.get(t['status'], 0) + 1
        print(f'[study] {osp.join(work_dir, study.RESULTS_FILE)}: ' +
              ', '.join(f'{v} {k}' for k, v in sorted(counts.items())))


def cmd_analyze(args):
    from regnet_backbone import study
    path = study.analyze(args.work_dirs, args.out, metric=args.metric, scale=args.scale)
    print(f'[study] report: {path}')
    print(f'[study] summary: {osp.join(osp.dirname(path), study.SUMMARY_FILE)}')


def _demo_data(args, task) -> str:
    """Make the demo's data ready; returns its folder."""
    root = args.data_root or task['data_root']
    if task is DEMO_TASKS['synthetic-upernet']:
        from regnet_backbone.demo.synthetic import make_synthetic_coco
        print(f'[study] data: {root} (the synthetic shapes of `make demo`; generated when '
              'missing)', flush=True)
        make_synthetic_coco(root, **DEMO_DATA)
        return root
    from regnet_backbone.demo import fashion_mnist
    start = time.time()
    if args.download:
        counts = fashion_mnist.download_fashion_mnist(root)
        where = 'downloaded by mmpretrain'
    else:
        counts = fashion_mnist.prepare_fashion_mnist(root)
        where = f'unpacked from {fashion_mnist.SOURCE_DIR}'
    print(f'[study] data: Fashion-MNIST in {root} ({counts["train"]} training and '
          f'{counts["test"]} test images, {where}; ready in {time.time() - start:.1f} s)',
          flush=True)
    return root


def cmd_demo(args):
    from regnet_backbone import study
    start = time.time()
    task = DEMO_TASKS[args.task]
    data_root = _demo_data(args, task)
    config = args.config or task['config']
    n = args.n if args.n is not None else task['n']
    repeats = args.repeats if args.repeats is not None else task['repeats']
    work_dirs = []
    for space in DEMO_SPACES:
        work_dir = osp.join(args.out, space)
        reruns = repeats if space == DEMO_SPACES[0] else 0
        study.setup(config, work_dir, space=space, n=n, seed=args.seed,
                    flops=tuple(args.flops), cfg_options=args.cfg_options, data_root=data_root,
                    repeats=reruns)
        again = f' + {reruns} reruns of its first samples with another seed' if reruns else ''
        print(f'[study] {space}: {n} samples{again} in {work_dir} (sampling seed {args.seed}, '
              f'flops {args.flops[0] / 1e6:.0f}-{args.flops[1] / 1e6:.0f} MF at 224x224)',
              flush=True)
        work_dirs.append(work_dir)
    took, _ = _run(work_dirs, **_run_options(args))
    for work_dir in work_dirs:
        study.collect(work_dir)
    report_dir = osp.join(args.out, 'report')
    path = study.analyze(work_dirs, report_dir)
    print(f'[study] trained in {_minutes(took)}, {_minutes(time.time() - start)} in all')
    from regnet_backbone.study.layout import read_json
    summary = osp.join(report_dir, study.SUMMARY_FILE)
    for pair in read_json(summary)['pairs']:
        print(f"[study] {pair['verdict']}")
    print(f'[study] report: {path}')
    print(f'[study] summary: {summary}')
    print(f'[study] EDFs: {osp.join(report_dir, "edf.png")}')


def cmd_refinement(args):
    from regnet_backbone import study
    from regnet_backbone.study import refinement
    start = time.time()
    data_root = _demo_data(args, DEMO_TASKS['fashion-mnist'])
    dirs = refinement.setup(args.config, args.out, n=args.n, repeats=args.repeats,
                            seed=args.seed, flops=DEMO_FLOPS, cfg_options=args.cfg_options,
                            data_root=data_root)
    print(f'[study] {len(dirs)} spaces x ({args.n} samples + {args.repeats} reruns) in '
          f'{args.out} (sampling seed {args.seed}, flops {DEMO_FLOPS[0] / 1e6:.0f}-'
          f'{DEMO_FLOPS[1] / 1e6:.0f} MF at 224x224)', flush=True)
    took, trained = _run(list(dirs.values()), **_run_options(args))
    rate = 3600 * trained / took if trained else None
    for work_dir in dirs.values():
        study.collect(work_dir)
    summary = refinement.summarize(args.out, trials_per_hour=rate)
    print(f'[study] trained {trained} trials in {_minutes(took)}' +
          (f' ({rate:.0f} trials/hour)' if rate else '') +
          f', {_minutes(time.time() - start)} in all')
    for step in summary['steps']:
        print(f'[study] {refinement.step_sentence(step)}')
    for name in (refinement.REPORT_FILE, refinement.SUMMARY_FILE, refinement.PICTURE_FILE):
        print(f'[study] {name}: {osp.join(args.out, name)}')


COMMANDS = {'setup': cmd_setup, 'run': cmd_run, 'collect': cmd_collect, 'analyze': cmd_analyze,
            'demo': cmd_demo, 'refinement': cmd_refinement}


def main(argv=None) -> int:
    args = parse_args(argv)
    return cli.run(lambda: COMMANDS[args.command](args), debug=args.debug,
                   on_interrupt=lambda: 'interrupted: run the same command again to resume')


if __name__ == '__main__':
    sys.exit(main())
