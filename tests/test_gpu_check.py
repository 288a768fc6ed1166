"""tools/gpu_check.sh: the CPU path (tiny sizes) runs end to end and writes its report; the
equivalence checks' reference is the published network (timm's, same weights); each check
catches the fault it is there for; the offline install picks only missing packages."""
import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load_gpu_check():
    spec = importlib.util.spec_from_file_location('gpu_check', ROOT / 'tools/gpu_check.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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

    checks = {c['check'] for c in report['equivalence']}
    for needle in ('float64 vs CPU float64', 'float32 vs CPU float64', 'channels_last vs NCHW',
                   'with_cp vs without', 'deploy (BN folded)', 'AMP bf16'):
        assert any(needle in c for c in checks), needle
    assert all(c['passed'] for c in report['equivalence'] if 'skip' not in c)
    # On a CPU, 'cpu float64 vs CPU float64' reruns the reference itself and proves nothing;
    # the lower-precision rows must have compared two different computations: a nonzero error.
    lower = [c for c in report['equivalence'] if 'skip' not in c and
             ('float32 vs CPU float64' in c['check'] or c['check'].startswith('AMP'))]
    assert len(lower) >= 3
    assert all(c['output_error'] > 0 and c['grad_error'] > 0 for c in lower), lower
    assert all(c['passed'] for c in report['onnx']['checks'])

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
    for section in ('## Environment', '## Equivalence', '## ONNX round trip', '## Families',
                    '## Benchmark', 'Skipped'):
        assert section in text
    assert (out / 'families.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'phase equivalence' in (out / 'gpu_check.log').read_text()


def test_reference_model_is_the_published_network():
    """The checks' reference, our backbone on the CPU in float64, computes what timm's
    RegNetY-200MF computes with the same weights, in train mode (batch statistics) and in eval
    mode: the equivalence checks measure against the real network, not only against ours."""
    import timm

    from regnet_backbone.checkpoints import export_state_dict
    gpu_check = _load_gpu_check()
    ours = gpu_check._reference_model('regnety_200mf', (32, 32)).double()
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
        assert gpu_check.relative_error(got, expected) < 1e-12
        assert all(e.abs().max() > 0 for e in expected)


def test_each_check_catches_its_fault(monkeypatch):
    """Two planted faults, each failing exactly the checks written for it. A float32-only error
    (the stem's activations 0.1% off in float32, mixed with their neighbours, as a wrong fp32
    kernel would be) fails the float32-vs-float64 checks and nothing else: the same-math checks
    compare float32 with float32, and autocast runs in fp16/bf16. A BN fold that forgets the BN
    shift fails the deploy checks, which compare against the unfused model."""
    gpu_check = _load_gpu_check()
    from regnet_backbone.models import fusion
    real_fuse, real_reference = fusion.fuse_conv_bn, gpu_check._reference_model

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
    monkeypatch.setattr(gpu_check, '_reference_model', faulty_reference)
    results = gpu_check.equivalence_checks(torch.device('cpu'), ['regnetx_200mf'], 4, (64, 64),
                                           log=lambda message: None)
    failed = {c['check'] for c in results if not c.get('passed', True)}
    assert failed == {'cpu float32 vs CPU float64, train mode',
                      'cpu float32 vs CPU float64, eval mode',
                      'deploy (BN folded) vs eval mode (float32)',
                      'deploy + channels_last vs eval mode (float32)'}


def test_relative_error():
    gpu_check = _load_gpu_check()
    a = [torch.ones(10), torch.zeros(3)]
    assert gpu_check.relative_error(a, a) == 0
    b = [torch.ones(10) * 1.01, torch.zeros(3)]
    assert gpu_check.relative_error(b, a) == pytest.approx(0.01)


def test_offline_install_takes_only_missing_packages(tmp_path):
    gpu_check = _load_gpu_check()
    for name in ('torch-9.9.9-py3-none-any.whl', 'surely_absent_pkg-1.0-py3-none-any.whl'):
        (tmp_path / name).write_bytes(b'')
    assert [os.path.basename(w) for w in gpu_check.missing_wheels(str(tmp_path))] == [
        'surely_absent_pkg-1.0-py3-none-any.whl']
    assert gpu_check.wheel_project('PyYAML-6.0.2-py3-none-any.whl') == 'pyyaml'
