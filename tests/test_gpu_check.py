"""tools/gpu_check.sh: the CPU path (tiny sizes) runs end to end (slow: ``make test-slow``),
reports tests/gpu as not run (no CUDA) and writes its report; the environment phase alone and a
missing CUDA device are reported; the CUDA tests' reference is the published network (timm's,
same weights); each of their cases catches the fault it is there for (planted and measured on
the CPU, where every case but float64-vs-float64 compares two different computations); the
offline install picks only missing packages and carries what pytest needs."""
import importlib.util
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import torch

from regnet_backbone.benchmark import relative_error

ROOT = Path(__file__).resolve().parents[1]


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cases():
    return _load('tests/gpu/test_equivalence.py', 'gpu_equivalence')


def _gpu_check(run_tool, tmp_path, *args, **env):
    """tools/gpu_check.py with ``args``, its report in tmp_path/report: (process, report)."""
    out = tmp_path / 'report'
    run = run_tool(ROOT / 'tools/gpu_check.py', *args, '--out', out, '--wheels', tmp_path / 'none',
                   env=env)
    return run, json.loads((out / 'gpu_check.json').read_text())


def test_environment_phase_alone_writes_the_report(tmp_path, run_tool, explain):
    run, report = _gpu_check(run_tool, tmp_path, '--device', 'cpu', '--tiny', '--skip',
                             'equivalence', 'onnx', 'families', 'benchmark')
    assert run.returncode == 0, explain(run)
    assert report['passed'] and report['device'] == 'cpu' and not report['errors']
    assert set(report['phases']) == {'environment'}
    assert report['environment']['found_before']['torch'] == torch.__version__.split('+')[0]
    assert '## Environment' in (tmp_path / 'report' / 'gpu_check.md').read_text()


def test_a_missing_cuda_device_fails_the_check_with_the_reason(tmp_path, run_tool, explain):
    run, report = _gpu_check(run_tool, tmp_path, '--device', 'cuda', CUDA_VISIBLE_DEVICES='')
    assert run.returncode == 1, explain(run)
    assert not report['passed'] and 'torch sees no CUDA device' in report['errors']['device']
    assert 'Traceback' not in run.stderr and set(report['phases']) == {'environment'}


@pytest.mark.slow
def test_cpu_path_end_to_end(tmp_path):
    out = tmp_path / 'report'
    env = {k: v for k, v in os.environ.items() if k != 'OUT'}
    env.update(PYTHON=sys.executable, OMP_NUM_THREADS='1')
    run = subprocess.run(['bash', str(ROOT / 'tools/gpu_check.sh'), '--device', 'cpu', '--tiny',
                          '--threads', '1', '--out', str(out), '--wheels', str(tmp_path / 'none')],
                         capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((out / 'gpu_check.json').read_text())
    assert report['passed'] and report['device'] == 'cpu' and not report['errors']
    assert report['environment']['found_before']['torch'] == torch.__version__.split('+')[0]
    assert report['environment']['installed'] == []
    assert set(report['phases']) == {'environment', 'equivalence', 'onnx', 'families', 'benchmark'}

    # Without CUDA every test of tests/gpu is collected (each case for --tiny's one arch) and
    # reported as not run, with the reason; none passes by comparing the CPU with itself.
    equivalence = report['equivalence']
    cases = _cases().CASES
    assert {e['test'].split('[')[-1].rstrip(']') for e in equivalence} == {
        f'regnety_200mf-{name}' for name in cases}
    assert all(e['skip'] == 'CUDA is not available' and 'passed' not in e for e in equivalence)
    onnx = report['onnx']['checks']
    assert [c['check'] for c in onnx] == ['test_dynamic_export_matches_pytorch[eval]',
                                          'test_dynamic_export_matches_pytorch[deploy]']
    assert all(c['passed'] for c in onnx)

    families = {(r['model'], r['task']) for r in report['families']['rows']}
    assert families == {(m, t) for m in ('RegNetY-400MF', 'EfficientNet-B0')
                        for t in ('inference', 'train')}  # --tiny: the first pair only
    assert report['families']['pairs'][0]['inference_ratio'] > 0
    assert all(r['activation_mb'] > 0 and r['gflops'] > 0 for r in report['families']['rows'])

    rows = report['matrix']['rows']
    assert {(r['implementation'], r['mode'], r['task']) for r in rows} >= {
        ('ours', 'fp32', 'inference'), ('ours', 'channels_last+deploy', 'inference'),
        ('ours', 'channels_last', 'train'), ('timm', 'fp32', 'train')}
    ours = next(r for r in rows if (r['implementation'], r['mode'], r['task']) ==
                ('ours', 'channels_last+deploy', 'inference'))
    assert ours['vs']['timm']['rival_mode'] == 'channels_last' and ours['images_per_s'] > 0
    skipped = {s['implementation'] for s in report['matrix']['skipped']}
    assert 'torchvision' in skipped  # torchvision ships no regnetx_400mf: a reason, not a crash

    text = (out / 'gpu_check.md').read_text()
    for section in ('## Environment', '## Equivalence', 'Not run: CUDA is not available',
                    '## ONNX round trip', '## Families', '## Benchmark', 'Skipped'):
        assert section in text
    assert (out / 'families.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    log = (out / 'gpu_check.log').read_text()
    assert 'phase equivalence' in log and 'CUDA is not available' in log


def test_reference_model_is_the_published_network():
    """The CUDA tests' reference, our backbone on the CPU in float64, computes what timm's
    RegNetY-200MF computes with the same weights, in train mode (batch statistics) and in eval
    mode: the cases measure against the real network, not only against ours."""
    import copy

    import timm

    from regnet_backbone.checkpoints import export_state_dict
    ours = _cases().reference_model('regnety_200mf', (32, 32)).double()
    timm_model = timm.create_model('regnety_002', num_classes=0)  # no classifier head
    timm_model.load_state_dict(export_state_dict(ours.state_dict(), 'timm'), strict=True)
    timm_model.double()
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for mode in (True, False):
        a, b = copy.deepcopy(ours).train(mode), copy.deepcopy(timm_model).train(mode)
        with torch.no_grad():
            got, h = a(x), b.stem(x)
            expected = []
            for i in range(1, 5):
                h = getattr(b, f's{i}')(h)
                expected.append(h)
        assert len(got) == 4
        assert relative_error(got, expected) < 1e-12
        assert all(e.abs().max() > 0 for e in expected)


#: The cases that compare two different computations on a CPU: float64 against float64 would be
#: the reference itself, TF32 is a CUDA setting, and the CPU's fp16 autocast is not what a GPU runs.
CPU_CASES = ('fp32-train', 'fp32-eval', 'channels_last', 'with_cp', 'deploy',
             'deploy-channels_last', 'amp_bf16', 'amp_bf16-channels_last')


def test_each_case_catches_its_fault(monkeypatch):
    """Clean, every case is within its bound, and the float64-referenced ones measure a nonzero
    error (two computations, not one twice). Then two planted faults, each failing exactly the
    cases written for it. A float32-only error (the stem's activations 0.1% off in float32,
    mixed with their neighbours, as a wrong fp32 kernel would be) fails the float32-vs-float64
    cases and nothing else: the same-math cases compare float32 with float32, and autocast runs
    in bf16. A BN fold that forgets the BN shift fails the deploy cases, which compare against
    the unfused model."""
    cases = _cases()
    cpu, shape = torch.device('cpu'), (4, 64, 64)
    clean = {name: cases.measure(name, 'regnetx_200mf', cpu, shape) for name in CPU_CASES}
    assert all(cases.passes(name, errors) for name, errors in clean.items()), clean
    for name in ('fp32-train', 'fp32-eval', 'amp_bf16', 'amp_bf16-channels_last'):
        assert clean[name]['output_error'] > 0 and clean[name]['grad_error'] > 0, name

    from regnet_backbone.models import fusion
    real_fuse, real_reference = fusion.fuse_conv_bn, cases.reference_model

    def no_shift(conv, bn):
        fused = real_fuse(conv, bn)
        with torch.no_grad():
            fused.bias.zero_()
        return fused

    def off_in_float32(module, inputs, output):
        if output.dtype == torch.float32:
            return output + 1e-3 * output.roll(1, dims=-1)
        return None

    def faulty_reference(*args, **kwargs):
        model = real_reference(*args, **kwargs)
        model.stem.act.register_forward_hook(off_in_float32)  # kept by deepcopy and deploy
        return model
    monkeypatch.setattr(fusion, 'fuse_conv_bn', no_shift)
    monkeypatch.setattr(cases, 'reference_model', faulty_reference)
    cases.clear_caches()
    failed = {name for name in CPU_CASES
              if not cases.passes(name, cases.measure(name, 'regnetx_200mf', cpu, shape))}
    assert failed == {'fp32-train', 'fp32-eval', 'deploy', 'deploy-channels_last'}


def test_relative_error():
    a = [torch.ones(10), torch.zeros(3)]
    b = [torch.ones(10) * 1.01, torch.zeros(3)]
    assert relative_error(b, a) == pytest.approx(0.01)  # ||0.01 * 1|| / ||1||, by hand
    assert relative_error([torch.tensor([3.0, 4.0])], [torch.tensor([0.0, 0.0])]) > 1e100


def test_offline_install_takes_only_missing_packages(tmp_path):
    sys.path.append(str(ROOT / 'tools'))
    try:
        offline = _load('tools/benchmarks/offline.py', 'gpu_check_offline')
    finally:
        sys.path.remove(str(ROOT / 'tools'))
    for name in ('torch-9.9.9-py3-none-any.whl', 'surely_absent_pkg-1.0-py3-none-any.whl'):
        (tmp_path / name).write_bytes(b'')
    assert [os.path.basename(w) for w in offline.missing_wheels(str(tmp_path))] == [
        'surely_absent_pkg-1.0-py3-none-any.whl']
    assert offline.wheel_project('PyYAML-6.0.2-py3-none-any.whl') == 'pyyaml'


def test_carried_wheels_cover_what_pytest_needs():
    """A bare GPU machine has no pytest: the prepare script downloads pytest and every
    dependency this Python's pytest declares (for Python 3.12, the machine's), and the driver
    lists them as found or absent."""
    script = (ROOT / 'tools/prepare_gpu_check.sh').read_text()
    names = re.search(r'for name in ([^;]+); do', script).group(1).split()
    from packaging.requirements import Requirement
    machine = dict(python_version='3.12', python_full_version='3.12.3', sys_platform='linux',
                   platform_system='Linux', extra='')
    needed = {'pytest'}
    for text in metadata.requires('pytest') or []:
        requirement = Requirement(text)  # exceptiongroup and tomli: below Python 3.11 only
        if requirement.marker is None or requirement.marker.evaluate(machine):
            needed.add(requirement.name.lower())
    assert needed <= set(names), needed - set(names)
    offline = (ROOT / 'tools/benchmarks/offline.py').read_text()
    assert all(f"'{n}'" in offline for n in needed)
