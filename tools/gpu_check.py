"""The GPU check: environment, the CUDA tests (tests/gpu), the ONNX round trip, families, benchmark.

    python tools/gpu_check.py                          # on a GPU machine (see tools/gpu_check.sh)
    python tools/gpu_check.py --device cpu --tiny --out /tmp/gpu_check   # the same path, on a CPU

Made for a bare GPU machine lent for a few minutes, with PyTorch but no registry: it first installs
the wheels that ``tools/prepare_gpu_check.sh`` carried (``gpu_check/wheels``: mmengine, pytest and
their pure-Python dependencies), offline and only those whose package is missing, then runs its
phases in order of value and prints the elapsed time of each: ``pytest tests/gpu`` (CUDA against
the CPU in float64; reported as not run where there is no CUDA), tests/test_onnx_export.py's
dynamic export (where onnx and onnxruntime import), the families and the benchmark matrix
(tools/benchmarks/). The benchmark gets whatever is left of ``--budget`` and reports the groups
it had no time for as skipped. Results go to ``--out`` (default ``$OUT`` when set, else
``work_dirs/gpu_check``) after every phase: ``gpu_check.json``, ``gpu_check.md``,
``families.png`` and ``gpu_check.log``. Exit status 1 when a test failed or the package could not
be imported; everything else that cannot run is a recorded skip.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, 'tools')
sys.path.append(TOOLS)  # last: tools/ never shadows another module

import torch  # noqa: E402  (the one package the machine must have)

from benchmarks.offline import Log, environment, installed_version  # noqa: E402

WHEELS = os.path.join(ROOT, 'gpu_check', 'wheels')
ONNX_TEST = 'tests/test_onnx_export.py::test_dynamic_export_matches_pytorch'


def run_pytest(targets, options, log):
    """``python -m pytest`` on ``targets`` in a child process; returns (exit code, one entry per
    test: outcome, reason and recorded properties; see tools/benchmarks/pytest_report.py)."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, 'report.json')
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [ROOT, TOOLS] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
        cmd = [sys.executable, '-m', 'pytest', *targets, '-q', '-p', 'benchmarks.pytest_report',
               '--report-json', path, *options]
        run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        for line in (run.stdout + run.stderr).strip().splitlines()[-40:]:
            log('  | ' + line)
        results = json.load(open(path)) if os.path.exists(path) else []
    if run.returncode not in (0, 1) or not results:  # 1: a test failed; else pytest did not run
        raise RuntimeError(f'pytest exited with {run.returncode} '
                           f'({(run.stderr or run.stdout).strip()[-300:]})')
    for entry in results:  # the report's keys: check, passed, or skip with the reason
        entry.setdefault('check', entry['test'].split('::')[-1])
        if entry['outcome'] == 'skipped':
            entry['skip'] = entry['reason']
        else:
            entry['passed'] = entry['outcome'] == 'passed'
    return run.returncode, results


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    log_path = os.path.join(args.out, 'gpu_check.log')
    if os.path.exists(log_path):
        os.remove(log_path)
    log = Log(log_path)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = dict(device=args.device, tiny=args.tiny, errors={},
                  date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))
    began = time.monotonic()
    log('== environment')
    report['environment'] = environment(args, log)
    log.phase('environment', began)
    if 'import_error' in report['environment']:
        return _finish(report, args, log, failed=True)
    from regnet_backbone.runtime import cli  # the package imports now (wheels installed)
    return cli.run(lambda: _check(report, args, log))


def _check(report, args, log):
    """The phases after the environment; returns the exit status."""
    from benchmarks import families, matrix
    from regnet_backbone.benchmark import BenchmarkError, resolve_device
    try:
        device = resolve_device(args.device)
    except BenchmarkError as error:  # recorded: the report is what a lent machine leaves behind
        report['errors']['device'] = str(error)
        log(f'error: {error}')
        return _finish(report, args, log, failed=True)
    report['device'] = str(device)
    failed = False
    for phase, targets, options in (
            ('equivalence', ['tests/gpu'],
             ['--gpu-archs', 'regnety_200mf', '--gpu-shape', '4x64x64'] if args.tiny else []),
            ('onnx', [ONNX_TEST], [])):
        if phase in args.skip:
            continue
        began = time.monotonic()
        log(f'== {phase}: pytest {" ".join(targets + options)}')
        missing = [m for m in ('onnx', 'onnxruntime') if installed_version(m) is None]
        if phase == 'onnx' and missing:
            report['onnx'] = dict(skip=f"{' and '.join(missing)} not installed (not carried)")
            log(f"  skip: {report['onnx']['skip']}")
        else:
            try:
                code, results = run_pytest(targets, options, log)
                report[phase] = results if phase == 'equivalence' else dict(checks=results)
                failed |= code != 0
            except Exception as error:
                report['errors'][phase] = f'{type(error).__name__}: {error}'
                log(f'error: {report["errors"][phase]}')
                failed = True
        log.phase(phase, began)
        _write(report, args, log, failed)

    if args.tiny:
        archs, shapes, rounds, warmup = ('regnetx_400mf', ), ((1, 64, 64), ), 1, 1
        modes = ('fp32', 'channels_last', 'amp_bf16', 'channels_last+deploy')
        fam_batch, fam_res, fam_modes = 2, 32, ('fp32', )
        fam_models = families.FAMILY_MODELS[:2]  # one pair: RegNetY-400MF and EfficientNet-B0
    else:
        archs, shapes, rounds, warmup = matrix.MATRIX_ARCHS, matrix.MATRIX_SHAPES, 5, 2
        modes = None  # the device's defaults, compile included
        fam_batch, fam_res = (32 if device.type == 'cuda' else 8), None
        fam_models = families.FAMILY_MODELS
        fam_modes = ('fp32', 'amp_bf16+channels_last') if device.type == 'cuda' else ('fp32', )
    # cuDNN's autotuner stays off (torch's and mmengine's default): it would try every algorithm
    # for each new conv shape of each model and layout, minutes this window does not have.
    report['environment']['cudnn'] = dict(benchmark=torch.backends.cudnn.benchmark,
                                          allow_tf32=torch.backends.cudnn.allow_tf32)
    if 'families' not in args.skip:
        began = time.monotonic()
        log(f'== families on {device}')
        try:
            report['families'] = families.run_families(device, fam_batch, fam_modes, fam_res,
                                                       rounds, warmup, models=fam_models, log=log)
        except Exception as error:
            report['errors']['families'] = f'{type(error).__name__}: {error}'
            log(traceback.format_exc())
        log.phase('families', began)
        _write(report, args, log, failed)
    if 'benchmark' not in args.skip:
        began = time.monotonic()
        deadline = log.start + args.budget
        log(f'== benchmark on {device}: {max(0, deadline - time.monotonic()):.0f} s left of '
            'the budget')
        try:
            report['matrix'] = matrix.run_matrix(device, archs, shapes, modes, rounds=rounds,
                                                 warmup=warmup, deadline=deadline,
                                                 log=log).to_dict()
        except Exception as error:
            report['errors']['benchmark'] = f'{type(error).__name__}: {error}'
            log(traceback.format_exc())
        log.phase('benchmark', began)
    return _finish(report, args, log, failed)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda', help='cuda (default) or cpu')
    parser.add_argument('--tiny', action='store_true',
                        help='tiny sizes and rounds (the CPU test of this script)')
    parser.add_argument('--out', default=os.environ.get('OUT') or
                        os.path.join(ROOT, 'work_dirs', 'gpu_check'),
                        help='report folder (default: $OUT if set, else work_dirs/gpu_check)')
    parser.add_argument('--wheels', default=WHEELS, help='folder of carried wheels')
    parser.add_argument('--no-install', action='store_true', help='install no carried wheel')
    parser.add_argument('--budget', type=float, default=330.0,
                        help='seconds for the whole check: the benchmark starts no group after '
                        'it, and no compile group in its last 90 s (default 330, so that a run '
                        'and a rerun fit in a 15-minute lease with the machine\'s start)')
    parser.add_argument('--skip', nargs='*', default=[],
                        choices=['equivalence', 'onnx', 'families', 'benchmark'])
    parser.add_argument('--threads', type=int, default=None, help='CPU threads for torch')
    return parser.parse_args(argv)


def _replace(path, text):
    """Write ``text`` to ``path`` atomically (stdlib only: the package may not import)."""
    with open(path + '.tmp', 'w') as f:
        f.write(text)
    os.replace(path + '.tmp', path)


def _write(report, args, log, failed):
    """Write the JSON and markdown so far: a run killed at its time limit still leaves them."""
    report.update(phases=dict(log.phases), elapsed_s=time.monotonic() - log.start,
                  passed=not failed)
    _replace(os.path.join(args.out, 'gpu_check.json'), json.dumps(report, indent=2, default=str))
    try:
        from benchmarks.gpu_report import markdown
        _replace(os.path.join(args.out, 'gpu_check.md'), markdown(report))
    except Exception as error:
        log(f'markdown not written: {type(error).__name__}: {error}')


def _finish(report, args, log, failed):
    _write(report, args, log, failed)
    if report.get('families', {}).get('rows'):
        try:
            from benchmarks.families import plot_families
            plot_families(report['families'], os.path.join(args.out, 'families.png'),
                          f"speed vs flops, {report['environment'].get('gpu') or 'CPU'}, "
                          f"batch {report['families']['batch']}")
        except Exception as error:  # matplotlib missing: the picture is skipped, not the report
            log(f'families.png not written: {type(error).__name__}: {error}')
    log(f"done in {report['elapsed_s']:.0f} s: {'passed' if not failed else 'FAILED'}; "
        f'report in {args.out}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
