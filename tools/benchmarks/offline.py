"""The GPU check's first phase, before anything beyond torch may be imported: the environment
report and the offline install of the carried wheels (stdlib and torch only)."""
import glob
import importlib
import os
import platform
import subprocess
import sys
import time

import torch

#: What the report lists as found (distribution names).
PACKAGES = ('torch', 'torchvision', 'timm', 'onnx', 'onnxruntime', 'onnxscript', 'numpy',
            'matplotlib', 'mmengine', 'mmcv', 'mmdet', 'addict', 'yapf', 'termcolor',
            'platformdirs', 'rich', 'pyyaml', 'opencv-python', 'opencv-python-headless',
            'pytest', 'pluggy', 'iniconfig', 'packaging', 'pygments')


class Log:
    """Print and keep every line (``gpu_check.log``); time phases from one start."""

    def __init__(self, path):
        self.path, self.start, self.phases = path, time.monotonic(), {}

    def __call__(self, message=''):
        line = f'[{time.monotonic() - self.start:6.1f}s] {message}'
        print(line, flush=True)
        with open(self.path, 'a') as f:
            f.write(line + '\n')

    def phase(self, name, began):
        self.phases[name] = round(time.monotonic() - began, 1)
        self(f'phase {name}: {self.phases[name]:.1f} s')


def installed_version(name):
    from importlib import metadata
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def wheel_project(path):
    """Distribution name of a wheel file (``termcolor-2.5.0-py3-none-any.whl`` -> termcolor)."""
    return os.path.basename(path).split('-')[0].lower().replace('_', '-').replace('.', '-')


def missing_wheels(folder):
    """The carried wheels whose package is not installed (an installed one of any version is
    kept: the image's own packages are never replaced)."""
    wheels = sorted(glob.glob(os.path.join(folder, '*.whl')))
    return [w for w in wheels if installed_version(wheel_project(w)) is None]


def install_offline(folder, wheels):
    """``pip install --no-index --no-deps`` of ``wheels`` into this Python. ``--no-deps``: the
    carried set was chosen by package name beside the image's own packages, and pip must not try
    to resolve (say) mmengine's opencv-python against the image's headless build."""
    cmd = [sys.executable, '-m', 'pip', 'install', '--no-index', '--no-deps', '--no-cache-dir',
           '--disable-pip-version-check', '--find-links', folder, *wheels]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f'offline install failed: {(run.stderr or run.stdout).strip()[-800:]}')
    importlib.invalidate_caches()


def environment(args, log):
    info = dict(python=sys.version.split()[0], executable=sys.executable,
                platform=platform.platform(), cpu_count=os.cpu_count(),
                cuda_available=torch.cuda.is_available(), torch_cuda=torch.version.cuda)
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(), multiprocessors=props.multi_processor_count,
                    gpu_memory_gib=round(props.total_memory / 2**30, 1))
        log(f"GPU: {info['gpu']} ({info['gpu_memory_gib']} GiB), torch {torch.__version__} "
            f'(CUDA {torch.version.cuda})')
    info['found_before'] = {p: installed_version(p) for p in PACKAGES}
    log('found: ' + ', '.join(f'{p} {v}' for p, v in info['found_before'].items() if v))
    log('absent: ' + ', '.join(p for p, v in info['found_before'].items() if not v))
    folder = args.wheels
    present = os.path.isdir(folder)
    info['wheels_folder'] = folder if present else None
    info['carried'] = [os.path.basename(w)
                       for w in sorted(glob.glob(os.path.join(folder, '*.whl')))]
    missing = missing_wheels(folder) if present else []
    info['installed'] = [] if args.no_install else [os.path.basename(w) for w in missing]
    if not present:
        log(f'no carried wheels at {folder} (run tools/prepare_gpu_check.sh where pip works)')
    elif missing and args.no_install:
        log('missing but not installed (--no-install): ' +
            ', '.join(os.path.basename(w) for w in missing))
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
