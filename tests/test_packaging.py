"""The package as users install it: a wheel, ``pip install``-ed (not editable) into an existing
environment, used from outside the checkout; the declared floors; ``python_requires``.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
import torch
import torchvision

ROOT = Path(__file__).resolve().parents[1]
#: What never goes into a build copy of the checkout.
NOT_SOURCE = shutil.ignore_patterns('.git', '__pycache__', '*.egg-info', 'build', 'dist',
                                    'work_dirs', 'data', '.mim', '*.pth', 'gpu_check')


@pytest.fixture(scope='module')
def outside(run_tool):
    """``outside(*args, python=sys.executable, cwd=ROOT)``: conftest's ``run_tool`` with no
    ``PYTHONPATH`` (what an installed package sees), required to exit 0; returns stdout."""
    def run(*args, python=sys.executable, cwd=ROOT):
        return run_tool(*args, python=python, cwd=cwd, checkout_on_path=False, check=True).stdout
    return run


@pytest.fixture(scope='module')
def installed(tmp_path_factory, outside):
    """A venv whose only own package is our wheel; the stack (torch, mmcv, mmengine, ...) is
    this environment's, reached through a ``.pth`` line, as in a user's existing environment."""
    tmp = tmp_path_factory.mktemp('wheel')
    source = tmp / 'source'
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE, symlinks=True)
    outside('-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', tmp / 'dist',
            source, cwd=tmp)
    wheel, = (tmp / 'dist').glob('regnet_backbone-*.whl')
    venv = tmp / 'venv'
    outside('-m', 'venv', '--without-pip', venv,
            python=getattr(sys, '_base_executable', sys.executable))
    python = venv / 'bin' / 'python'
    purelib = Path(outside('-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])',
                           python=python).strip())
    (purelib / 'existing_stack.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    # --no-index: nothing may be downloaded; --no-deps: the stack's own (editable) record of
    # this package must not count as installed. The requirements are checked below.
    outside('-m', 'pip', '--python', python, 'install', '-q', '--no-index', '--no-deps', wheel,
            cwd=tmp)
    work = tmp / 'outside'
    work.mkdir()
    return python, purelib, work


@pytest.fixture(scope='module')
def in_venv(installed, outside):
    """``in_venv(CODE)``: run Python code (dedented) with the venv's Python outside the
    checkout; returns stdout."""
    python, _, work = installed
    return lambda code: outside('-c', textwrap.dedent(code), python=python, cwd=work)


def test_the_wheel_imports_from_site_packages_and_leaves_the_stack_alone(installed, in_venv):
    _, purelib, _ = installed
    out = in_venv('''
        import importlib.metadata as md, mmengine, torch, regnet_backbone
        from packaging.requirements import Requirement
        print(regnet_backbone.__file__)
        print(torch.__file__)
        print(mmengine.__file__)
        for line in md.requires('regnet-backbone'):
            req = Requirement(line)
            if req.marker is None:
                print(req.name, md.version(req.name) in req.specifier)
    ''').splitlines()
    stack = sysconfig.get_paths()['purelib']
    assert out[0].startswith(str(purelib) + os.sep)
    assert out[1] == torch.__file__ and out[1].startswith(stack)
    assert out[2].startswith(stack)
    met = dict(line.split() for line in out[3:])
    assert set(met) >= {'torch', 'torchvision', 'mmengine', 'setuptools'}
    assert all(v == 'True' for v in met.values()), met
    # Only our package went into the venv: torch, mmcv and friends stay where they were.
    own = {p.name.split('-')[0] for p in purelib.iterdir()} - {'existing_stack.pth', '__pycache__'}
    assert own == {'regnet_backbone'}, own


def test_the_wheel_ships_configs_and_tools_and_they_run_outside_the_checkout(installed, in_venv,
                                                                          outside, tmp_path):
    python, purelib, work = installed
    mim = purelib / 'regnet_backbone' / '.mim'
    shipped = {p.relative_to(mim / 'configs') for p in (mim / 'configs').rglob('*.py')}
    assert shipped == {p.relative_to(ROOT / 'configs') for p in (ROOT / 'configs').rglob('*.py')}
    assert (mim / 'tools' / 'convert_pretrained.py').is_file()

    # A torchvision checkpoint converted with the shipped tool, loaded by a shipped config's
    # backbone, gives torchvision's stage outputs.
    reference = torchvision.models.regnet_x_400mf().eval()
    torch.save(reference.state_dict(), tmp_path / 'tv.pth')
    outside(mim / 'tools' / 'convert_pretrained.py', tmp_path / 'tv.pth', tmp_path / 'ours.pth',
            python=python, cwd=work)
    x = torch.randn(1, 3, 64, 64)
    torch.save(x, tmp_path / 'x.pth')
    in_venv(f'''
        import torch
        from mmengine.config import Config
        from mmengine.registry import MODELS
        import regnet_backbone
        cfg = Config.fromfile({str(mim / 'configs' / 'mask_rcnn_regnetx_400mf_fpn.py')!r})
        cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint={str(tmp_path / 'ours.pth')!r})
        cfg.model.backbone.arch = 'regnetx_400mf_tv'  # torchvision's own widths
        cfg.model.backbone.out_indices = (3, )
        backbone = MODELS.build(cfg.model.backbone)
        backbone.init_weights()
        backbone.eval()
        with torch.no_grad():
            out = backbone(torch.load({str(tmp_path / 'x.pth')!r}))[-1]
        torch.save(out, {str(tmp_path / 'out.pth')!r})
    ''')
    with torch.no_grad():
        expected = reference.trunk_output(reference.stem(x))
    # Our config declares RGB weights and torchvision's are RGB: the same input for both.
    assert torch.allclose(torch.load(tmp_path / 'out.pth'), expected, atol=1e-4)


def test_the_train_command_of_studies_is_in_the_package(installed, outside):
    from regnet_backbone.study.layout import DEFAULT_TRAIN_TOOL
    python, _, work = installed
    out = outside('-m', DEFAULT_TRAIN_TOOL, '--help', python=python, cwd=work)
    assert '--resume' in out


VERMIN = (sys.executable, '-c', 'import sys; from vermin.main import main; sys.exit(main())',
          '--no-tips', '--violations', '-q')


def test_python_requires_is_what_the_code_needs():
    """vermin reads the source for the oldest Python each construct needs; the oldest stack
    (make test-oldest) runs the suite on that version."""
    requires = next(line for line in (ROOT / 'setup.py').read_text().splitlines()
                    if 'python_requires' in line)
    floor = requires.split("'>=")[1].split("'")[0]
    below = f'{floor.split(".")[0]}.{int(floor.split(".")[1]) - 1}'
    meets = subprocess.run([*VERMIN, f'-t={floor}-', 'regnet_backbone', 'tools'], cwd=ROOT,
                           capture_output=True, text=True)
    assert meets.returncode == 0, meets.stdout + meets.stderr
    # The floor is tight: something needs it (otherwise an older Python could be declared).
    tighter = subprocess.run([*VERMIN, f'-t={below}-', 'regnet_backbone', 'tools'], cwd=ROOT,
                             capture_output=True, text=True)
    assert tighter.returncode != 0


def test_setuptools_below_82_is_declared_because_mmengine_needs_pkg_resources():
    """mmengine resolves `mmdet::` base configs through pkg_resources (gone in setuptools 82):
    without it our configs do not load, so the wheel declares setuptools<82. When an mmengine
    release stops needing it, this fails: drop the pin then."""
    from importlib.metadata import requires
    assert 'setuptools<82' in requires('regnet-backbone')
    code = ('import sys; sys.modules["pkg_resources"] = None\n'
            'from mmengine.config import Config\n'
            f'Config.fromfile({str(ROOT / "configs" / "mask_rcnn_regnetx_3.2gf_fpn.py")!r})')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert 'ModuleNotFoundError' in proc.stderr and 'import pkg_resources' in proc.stderr
    with_it = subprocess.run([sys.executable, '-c', code.split('\n', 1)[1]], capture_output=True,
                             text=True)
    assert with_it.returncode == 0, with_it.stderr[-2000:]


def test_readme_support_table_is_current():
    table = subprocess.run([sys.executable, 'tools/support_matrix.py'], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.strip()
    readme = (ROOT / 'README.md').read_text()
    shown = readme.split('<!-- support-table:start -->\n')[1].split('\n<!-- support-table:end -->')[0]
    assert shown == table
    # The stacks CI builds are the ones tools/setup_env.sh knows.
    for stack in ('default', 'oldest'):
        assert f'| {stack} |' in table
        assert (ROOT / 'tools' / 'setup_env.sh').read_text().count(f'    {stack}) ') == 1
