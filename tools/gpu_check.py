"""The GPU check: environment, CUDA equivalence tests, ONNX round trip, families and the benchmark.

    python tools/gpu_check.py                          # on a GPU machine (see tools/gpu_check.sh)
    python tools/gpu_check.py --device cpu --tiny --out /tmp/gpu_check   # the same path, on a CPU

Made for a bare GPU machine lent for a few minutes, with PyTorch but no registry: it first installs
the wheels that ``tools/prepare_gpu_check.sh`` carried (``gpu_check/wheels``; mmengine and its
pure-Python dependencies), offline and only those whose package is missing, then runs its phases
in order of value and prints the elapsed time of each. The benchmark gets whatever is left of
``--budget`` and reports the groups it had no time for as skipped. Results go to ``--out``
(default ``$OUT`` when set, else ``work_dirs/gpu_check``): ``gpu_check.json``, ``gpu_check.md``,
``families.png`` and ``gpu_check.log``. Exit status 1 when an equivalence check failed or the
package could not be imported; everything else that cannot run is a recorded skip.
"""
import argparse
import glob
import importlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402  (the one package the machine must have)

WHEELS = os.path.join(ROOT, 'gpu_check', 'wheels')
#: What the report lists as found (distribution names).
PACKAGES = ('torch', 'torchvision', 'timm', 'onnx', 'onnxruntime', 'onnxscript', 'numpy',
            'matplotlib', 'mmengine', 'mmcv', 'mmdet', 'addict', 'yapf', 'termcolor',
            'platformdirs', 'rich', 'pyyaml', 'opencv-python', 'opencv-python-headless')


class Log:
    """Print and keep every line (``gpu_check.log``); time phases from one start."""

    def __init__(self, path):
        self.path, self.start = path, time.monotonic()
        self.phases = {}

    def __call__(self, message=''):
        line = f'[{time.monotonic() - self.start:6.1f}s] {message}'
        print(line, flush=True)
        with open(self.path, 'a') as f:
            f.write(line + '\n')

    def phase(self, name, began):
        self.phases[name] = round(time.monotonic() - began, 1)
        self(f'phase {name}: {self.phases[name]:.1f} s')


# --- phase 1: environment and offline install ---------------------------------------------------
def _canonical(name):
    return name.lower().replace('_', '-').replace('.', '-')


def installed_version(name):
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def wheel_project(path):
    """Distribution name of a wheel file (``termcolor-2.5.0-py3-none-any.whl`` -> termcolor)."""
    return _canonical(os.path.basename(path).split('-')[0])


def missing_wheels(folder):
    """The carried wheels whose package is not installed (an installed one of any version is
    kept: the image's own packages are never replaced)."""
    wheels = sorted(glob.glob(os.path.join(folder, '*.whl')))
    return [w for w in wheels if installed_version(wheel_project(w)) is None]


def install_offline(folder, wheels):
    """``pip install --no-index --no-deps`` of ``wheels`` into this Python; returns pip's output.

    ``--no-deps``: the carried set was chosen by package name beside the image's own packages, and
    pip must not try to resolve (say) mmengine's opencv-python against the image's headless build.
    """
    cmd = [sys.executable, '-m', 'pip', 'install', '--no-index', '--no-deps', '--no-cache-dir',
           '--disable-pip-version-check', '--find-links', folder, *wheels]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f'offline install failed: {(run.stderr or run.stdout).strip()[-800:]}')
    importlib.invalidate_caches()
    return run.stdout.strip().splitlines()[-1:] if run.stdout.strip() else []


def environment(args, log):
    info = dict(python=sys.version.split()[0], executable=sys.executable,
                platform=platform.platform(), cpu_count=os.cpu_count(),
                cuda_available=torch.cuda.is_available(), torch_cuda=torch.version.cuda)
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name()
        props = torch.cuda.get_device_properties(0)
        info['gpu_memory_gib'] = round(props.total_memory / 2**30, 1)
        info['multiprocessors'] = props.multi_processor_count
    info['found_before'] = {p: installed_version(p) for p in PACKAGES}
    log('found: ' + ', '.join(f'{p} {v}' for p, v in info['found_before'].items() if v))
    log('absent: ' + ', '.join(p for p, v in info['found_before'].items() if not v))
    if info.get('gpu'):
        log(f"GPU: {info['gpu']} ({info['gpu_memory_gib']} GiB), torch {torch.__version__} "
            f"(CUDA {torch.version.cuda})")
    folder = args.wheels
    info['wheels_folder'] = folder if os.path.isdir(folder) else None
    info['carried'] = [os.path.basename(w)
                       for w in sorted(glob.glob(os.path.join(folder, '*.whl')))]
    missing = missing_wheels(folder) if os.path.isdir(folder) else []
    info['installed'] = [os.path.basename(w) for w in missing]
    if not os.path.isdir(folder):
        log(f'no carried wheels at {folder} (run tools/prepare_gpu_check.sh where pip works)')
    elif missing and args.no_install:
        log('missing but not installed (--no-install): ' + ', '.join(info['installed']))
        info['installed'] = []
    elif missing:
        log('installing offline: ' + ', '.join(info['installed']))
        try:
            install_offline(folder, missing)
        except RuntimeError as error:
            info['install_error'] = str(error)
            log(f'error: {error}')
    else:
        log(f"carried wheels ({len(info['carried'])}) all present already")
    info['found_after'] = {p: installed_version(p) for p in PACKAGES}
    try:
        import regnet_backbone
        info['regnet_backbone'] = regnet_backbone.__version__
    except Exception as error:
        info['import_error'] = f'{type(error).__name__}: {error}'
        log(f"error: regnet_backbone does not import: {info['import_error']}")
    return info


# --- phase 2: equivalence ------------------------------------------------------------------------
#: Norm-wise relative error bounds (outputs, gradients): ||a - b|| / ||b|| over all outputs, or
#: over all parameter gradients. Calibrated on this project's CPU (2026-11-28, regnetx_3.2gf and
#: regnety_1.6gf at 4x3x96x96) with about 3x margin: fp32 4.6e-7 / 1.3e-6; channels_last vs NCHW
#: 9.6e-7 / 3.6e-4 (a few ReLUs whose input is near 0 flip under another summation order);
#: AMP fp16 1.7e-3 / 8.1e-2 and bf16 1.3e-2 / 2.1e-1: rounding every layer's activations to 11
#: or 8 mantissa bits leaves a deep net's weight gradients some percent off, the known cost of
#: AMP. TF32 (10 mantissa bits, cuDNN's default for fp32 convs on Ampere and later) gets fp16's.
TOLERANCES = {
    'fp64': (1e-8, 1e-8),        # same math, other kernels: only summation order differs
    'fp32': (1e-4, 1e-3),        # fp32 (TF32 off) against the fp64 reference
    'tf32': (5e-3, 2.5e-1),
    'amp_fp16': (5e-3, 2.5e-1),
    'amp_bf16': (4e-2, 6e-1),
    'same_math': (1e-5, 2e-3),   # one device and dtype; another layout, recompute, or BN folded
}


def relative_error(actual, expected):
    """||actual - expected|| / ||expected|| over a list of tensors, in float64 on the CPU."""
    a = torch.cat([t.detach().double().cpu().flatten() for t in actual])
    b = torch.cat([t.detach().double().cpu().flatten() for t in expected])
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def _reference_model(arch, size, seed=0):
    """Our backbone with pycls init and BN running statistics measured on 16 random images, so
    eval mode is as well scaled as training (the initial statistics, mean 0 and variance 1,
    would let activations grow with depth and overflow fp16)."""
    from regnet_backbone import RegNetBackbone
    torch.manual_seed(seed)
    model = RegNetBackbone(arch, zero_init_residual=False, norm_eval=False)
    model.init_weights()
    # Residual branches at 0.1 (each block's last BN scale), as in a trained network whose
    # blocks refine rather than replace their input. At unit scale a random deep ReLU net is
    # chaotic: its gradients change by percents under fp32 rounding alone, and no tolerance
    # could tell a wrong kernel from that.
    for name, m in model.named_modules():
        if name.endswith('norm3'):
            torch.nn.init.constant_(m.weight, 0.1)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 3, *size))
    for m in norms:
        m.momentum = 0.1
    return model


def _forward_backward(model, images, weights, autocast_dtype=None, device=None):
    """Outputs and parameter gradients of loss = sum_i <out_i, w_i> (fixed random projections)."""
    model.zero_grad(set_to_none=True)
    ctx = (torch.autocast(device_type=device.type, dtype=autocast_dtype) if autocast_dtype
           else _null())
    with ctx:
        outs = model(images)
    loss = sum((o.to(w.dtype) * w).sum() for o, w in zip(outs, weights))
    loss.backward()
    grads = [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]
    return [o.detach() for o in outs], grads


def _null():
    import contextlib
    return contextlib.nullcontext()


def equivalence_checks(device, archs, batch, size, log):
    """Each check: name, what, relative error of outputs and of gradients, tolerance, passed
    (or ``skip`` with the reason). The reference is our model on the CPU in float64.

    Train-mode BN normalises over batch x height x width of the last stage: keep that at 16
    values or more (e.g. batch 4 at 64x64), or fp32 rounding is amplified by near-zero batch
    variances and the comparison measures the input, not the kernels."""
    import copy
    results = []

    def record(name, arch, tolerance, out_err, grad_err=None):
        out_tol, grad_tol = tolerance
        passed = out_err <= out_tol and (grad_err is None or grad_err <= grad_tol)
        results.append(dict(check=name, arch=arch, output_error=out_err, grad_error=grad_err,
                            tolerance=out_tol, grad_tolerance=grad_tol if grad_err is not None
                            else None, passed=passed))
        grads = f', grads {grad_err:.2e} (<= {grad_tol:g})' if grad_err is not None else ''
        log(f"  {'ok  ' if passed else 'FAIL'} {arch} {name}: outputs {out_err:.2e} "
            f'(<= {out_tol:g}){grads}')

    def skip(name, arch, error):
        text = str(error).strip()
        reason = f'{type(error).__name__}: {text.splitlines()[0][:300] if text else ""}'
        results.append(dict(check=name, arch=arch, skip=reason))
        log(f'  skip {arch} {name}: {reason}')

    cuda = device.type == 'cuda'
    tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    for arch in archs:
        torch.manual_seed(1)
        images = torch.randn(batch, 3, *size, dtype=torch.float64)
        base = _reference_model(arch, size).double().eval()
        with torch.no_grad():  # eval mode: the projections must not move base's statistics
            weights = [torch.randn_like(o) for o in base(images)]
        ref = {}
        for mode in ('train', 'eval'):
            base.train(mode == 'train')
            ref[mode] = _forward_backward(copy.deepcopy(base), images, weights)

        def run(model, mode, dtype, autocast_dtype=None, channels_last=False):
            model = model.to(device=device, dtype=dtype)
            x = images.to(device=device, dtype=dtype)
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
                x = x.contiguous(memory_format=torch.channels_last)
            model.train(mode == 'train')
            w_dtype = torch.float64 if dtype == torch.float64 else torch.float32
            w = [t.to(device=device, dtype=w_dtype) for t in weights]
            return _forward_backward(model, x, w, autocast_dtype, device)

        try:
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
            for mode in ('train', 'eval'):
                out, grad = run(copy.deepcopy(base), mode, torch.float64)
                record(f'{device.type} float64 vs CPU float64, {mode} mode', arch,
                       TOLERANCES['fp64'], relative_error(out, ref[mode][0]),
                       relative_error(grad, ref[mode][1]))
            for mode in ('train', 'eval'):
                out, grad = run(copy.deepcopy(base), mode, torch.float32)
                record(f'{device.type} float32 vs CPU float64, {mode} mode', arch,
                       TOLERANCES['fp32'], relative_error(out, ref[mode][0]),
                       relative_error(grad, ref[mode][1]))
            fp32_eval = run(copy.deepcopy(base), 'eval', torch.float32)
            fp32_train = run(copy.deepcopy(base), 'train', torch.float32)
            out, grad = run(copy.deepcopy(base), 'train', torch.float32, channels_last=True)
            record('channels_last vs NCHW (float32, train mode)', arch, TOLERANCES['same_math'],
                   relative_error(out, fp32_train[0]), relative_error(grad, fp32_train[1]))
            cp_model = copy.deepcopy(base)
            cp_model.with_cp = True
            for block in cp_model.modules():
                if hasattr(block, 'with_cp'):
                    block.with_cp = True
            out, grad = run(cp_model, 'train', torch.float32)
            record('with_cp vs without (float32, train mode)', arch, TOLERANCES['same_math'],
                   relative_error(out, fp32_train[0]), relative_error(grad, fp32_train[1]))
            deployed = copy.deepcopy(base).to(device=device, dtype=torch.float32).eval()
            deployed.switch_to_deploy()
            with torch.no_grad():
                out = list(deployed(images.to(device=device, dtype=torch.float32)))
            record('deploy (BN folded) vs eval mode (float32)', arch, TOLERANCES['same_math'],
                   relative_error(out, fp32_eval[0]))
            deployed = deployed.to(memory_format=torch.channels_last)
            with torch.no_grad():
                out = list(deployed(images.to(device=device, dtype=torch.float32)
                                    .contiguous(memory_format=torch.channels_last)))
            record('deploy + channels_last vs eval mode (float32)', arch, TOLERANCES['same_math'],
                   relative_error(out, fp32_eval[0]))
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
        if cuda and torch.backends.cudnn.allow_tf32:
            out, grad = run(copy.deepcopy(base), 'eval', torch.float32)
            record('cuda float32 with TF32 convs (the default) vs CPU float64, eval mode', arch,
                   TOLERANCES['tf32'], relative_error(out, ref['eval'][0]),
                   relative_error(grad, ref['eval'][1]))
        for precision, dtype in (('amp_fp16', torch.float16), ('amp_bf16', torch.bfloat16)):
            name = f'AMP {precision[4:]} vs CPU float64, eval mode'
            try:
                out, grad = run(copy.deepcopy(base), 'eval', torch.float32, autocast_dtype=dtype)
            except Exception as error:  # e.g. a CPU or torch build without this autocast dtype
                skip(name, arch, error)
                continue
            record(name, arch, TOLERANCES[precision], relative_error(out, ref['eval'][0]),
                   relative_error(grad, ref['eval'][1]))
            try:
                out, grad = run(copy.deepcopy(base), 'eval', torch.float32, autocast_dtype=dtype,
                                channels_last=True)
            except Exception as error:
                skip(name + ', channels_last', arch, error)
                continue
            record(name + ', channels_last', arch, TOLERANCES[precision],
                   relative_error(out, ref['eval'][0]), relative_error(grad, ref['eval'][1]))
        if device.type == 'cuda':
            torch.cuda.empty_cache()
    return results


# --- phase 3: ONNX round trip --------------------------------------------------------------------
def onnx_round_trip(arch, size, log):
    """Export our deploy-mode backbone with dynamic axes, run it in onnxruntime at two shapes."""
    import tempfile

    from regnet_backbone import deploy
    model = deploy.build_backbone(arch=arch, deploy=True)
    result = dict(arch=arch, checks=[])
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, 'backbone.onnx')
        report = deploy.export_onnx(model, path, (1, 3, *size), dynamic=True)
        result.update(opset=report.opset, exporter=report.exporter, domains=report.domains,
                      op_types=report.op_types)
        session = deploy.onnxruntime_session(path)
        for shape in ((1, 3, *size), (2, 3, size[0] + 32, size[1] + 64)):
            x = torch.randn(*shape)
            with torch.no_grad():
                expected = model(x)
            got = [torch.from_numpy(a) for a in deploy.run_onnxruntime(session, x)]
            error = relative_error(got, expected)
            result['checks'].append(dict(shape=list(shape), output_error=error,
                                         passed=error < 1e-4))
            log(f"  {'ok  ' if error < 1e-4 else 'FAIL'} onnxruntime vs torch at {list(shape)}: "
                f'{error:.2e} (tolerance 1e-4)')
    return result


# --- the report ----------------------------------------------------------------------------------
def markdown(report):
    from regnet_backbone import benchmark as bench
    env = report['environment']
    lines = ['# GPU check', '',
             f"Device: {report['device']}" + (f" ({env['gpu']})" if env.get('gpu') else '') +
             f", torch {torch.__version__}, Python {env['python']}, {report['date']}. "
             f"Total {report['elapsed_s']:.0f} s; phases: " +
             ', '.join(f'{k} {v:.0f} s' for k, v in report['phases'].items()) + '.', '',
             '## Environment', '',
             'Found: ' + ', '.join(f'{p} {v}' for p, v in env['found_before'].items() if v) + '.',
             'Installed from the carried wheels: ' +
             (', '.join(env['installed']) or 'nothing') + '.']
    if env.get('cudnn'):
        lines.append(f"cuDNN autotuner (benchmark): {env['cudnn']['benchmark']}; TF32 convs: "
                     f"{env['cudnn']['allow_tf32']} (so 'fp32' conv rows on a GPU run on TF32 "
                     'tensor cores, and their peak is the TF32 matmul peak).')
    if env.get('install_error'):
        lines.append(f"Install error: {env['install_error']}")
    equivalence = report.get('equivalence', [])
    if equivalence:
        lines += ['', '## Equivalence (norm-wise relative error; reference: CPU float64)', '',
                  '| arch | check | outputs (bound) | gradients (bound) | passed |',
                  '|---|---|---|---|---|']
        for c in equivalence:
            if 'skip' in c:
                lines.append(f"| {c['arch']} | {c['check']} | skipped: {c['skip']} | | - |")
                continue
            grad = (f"{c['grad_error']:.1e} ({c['grad_tolerance']:g})"
                    if c['grad_error'] is not None else '-')
            lines.append(f"| {c['arch']} | {c['check']} | {c['output_error']:.1e} "
                         f"({c['tolerance']:g}) | {grad} | {'yes' if c['passed'] else '**NO**'} |")
    onnx = report.get('onnx')
    if onnx:
        lines += ['', '## ONNX round trip', '']
        if 'skip' in onnx:
            lines.append(f"Skipped: {onnx['skip']}")
        else:
            lines.append(f"{onnx['arch']}, deploy mode, dynamic axes, opset {onnx['opset']} "
                         f"({onnx['exporter']} exporter); domains {onnx['domains']}; " +
                         '; '.join(f"{c['shape']}: {c['output_error']:.1e}"
                                   for c in onnx['checks']))
    if report.get('families'):
        lines += ['', f"## Families (batch {report['families']['batch']})", '',
                  bench.families_markdown(report['families'])]
    if report.get('matrix'):
        lines += ['', '## Benchmark', '',
                  bench.matrix_markdown(bench.MatrixResult(**report['matrix']))]
    for name, error in report.get('errors', {}).items():
        lines += ['', f'Phase {name} failed: {error}']
    return '\n'.join(lines) + '\n'


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
    from regnet_backbone import benchmark as bench
    try:
        device = bench.resolve_device(args.device)
    except bench.BenchmarkError as error:
        report['errors']['device'] = str(error)
        log(f'error: {error}')
        return _finish(report, args, log, failed=True)
    report['device'] = str(device)

    if args.tiny:
        eq_archs, eq_batch, eq_size = ('regnety_200mf', ), 4, (64, 64)
        archs, shapes, rounds, warmup = ('regnetx_400mf', ), ((1, 64, 64), ), 1, 1
        modes = ('fp32', 'channels_last', 'amp_bf16', 'channels_last+deploy')
        fam_batch, fam_res, fam_modes = 2, 32, ('fp32', )
        fam_models = bench.FAMILY_MODELS[:2]  # one pair: RegNetY-400MF and EfficientNet-B0
    else:
        eq_archs, eq_batch, eq_size = bench.MATRIX_ARCHS, 4, (96, 96)
        archs, shapes, rounds, warmup = bench.MATRIX_ARCHS, bench.MATRIX_SHAPES, 5, 2
        modes = None  # the device's defaults, compile included
        fam_batch, fam_res = (32 if device.type == 'cuda' else 8), None
        fam_models = bench.FAMILY_MODELS
        fam_modes = ('fp32', 'amp_bf16+channels_last') if device.type == 'cuda' else ('fp32', )

    failed = False
    if 'equivalence' not in args.skip:
        began = time.monotonic()
        log(f'== equivalence on {device} ({", ".join(eq_archs)}, '
            f'{eq_batch}x3x{eq_size[0]}x{eq_size[1]})')
        try:
            report['equivalence'] = equivalence_checks(device, eq_archs, eq_batch, eq_size, log)
            failed |= not all(c.get('passed', True) for c in report['equivalence'])
        except Exception as error:
            report['errors']['equivalence'] = f'{type(error).__name__}: {error}'
            log(traceback.format_exc())
            failed = True
        log.phase('equivalence', began)
        _write(report, args, log, failed)

    if 'onnx' not in args.skip:
        began = time.monotonic()
        log('== ONNX export and onnxruntime (CPU)')
        missing = [m for m in ('onnx', 'onnxruntime') if installed_version(m) is None]
        if missing:
            report['onnx'] = dict(skip=f"{' and '.join(missing)} not installed (not carried)")
            log(f"  skip: {report['onnx']['skip']}")
        else:
            try:
                size = (64, 64) if args.tiny else (224, 224)
                report['onnx'] = onnx_round_trip('regnetx_400mf', size, log)
                failed |= not all(c['passed'] for c in report['onnx']['checks'])
            except Exception as error:
                report['onnx'] = dict(skip=f'{type(error).__name__}: {error}')
                log(f"  skip: {report['onnx']['skip']}")
        log.phase('onnx', began)
        _write(report, args, log, failed)

    # cuDNN's autotuner stays off (torch's and mmengine's default): it would try every algorithm
    # for each new conv shape of each model and layout, minutes this window does not have.
    report['environment']['cudnn'] = dict(benchmark=torch.backends.cudnn.benchmark,
                                          allow_tf32=torch.backends.cudnn.allow_tf32)
    if 'families' not in args.skip:
        began = time.monotonic()
        log(f'== families on {device}')
        try:
            report['families'] = bench.run_families(device, fam_batch, fam_modes, fam_res,
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
            matrix = bench.run_matrix(device, archs, shapes, modes, rounds=rounds, warmup=warmup,
                                      deadline=deadline, log=log)
            report['matrix'] = matrix.to_dict()
        except Exception as error:
            report['errors']['benchmark'] = f'{type(error).__name__}: {error}'
            log(traceback.format_exc())
        log.phase('benchmark', began)
    return _finish(report, args, log, failed)


def _write(report, args, log, failed):
    """Write the JSON and markdown so far: a run killed at its time limit still leaves them."""
    from regnet_backbone.atomic import replace_bytes
    report['phases'] = dict(log.phases)
    report['elapsed_s'] = time.monotonic() - log.start
    report['passed'] = not failed
    replace_bytes(os.path.join(args.out, 'gpu_check.json'),
                  json.dumps(report, indent=2, default=str).encode())
    try:
        replace_bytes(os.path.join(args.out, 'gpu_check.md'), markdown(report).encode())
    except Exception as error:  # a report of a run that could not import the package
        log(f'markdown not written: {type(error).__name__}: {error}')


def _finish(report, args, log, failed):
    _write(report, args, log, failed)
    if report.get('families', {}).get('rows'):
        try:
            from regnet_backbone import benchmark as bench
            bench.plot_families(report['families'], os.path.join(args.out, 'families.png'),
                                f"speed vs flops, {report['environment'].get('gpu') or 'CPU'}, "
                                f"batch {report['families']['batch']}")
        except Exception as error:  # matplotlib missing: the picture is skipped, not the report
            log(f'families.png not written: {type(error).__name__}: {error}')
    log(f"done in {report['elapsed_s']:.0f} s: {'passed' if not failed else 'FAILED'}; "
        f'report in {args.out}')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
