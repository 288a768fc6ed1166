"""tools/benchmark.py runs end to end in a tiny configuration (no timing is asserted)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_tool_tiny_run(tmp_path):
    out_json, out_md, out_png = tmp_path / 'b.json', tmp_path / 'b.md', tmp_path / 'b.png'
    cmd = [sys.executable, str(ROOT / 'tools/benchmark.py'), '--arch', 'regnetx_400mf',
           '--batch', '1', '--size', '64', '64', '--rounds', '1', '--warmup', '1', '--threads', '1',
           '--json', str(out_json), '--markdown', str(out_md), '--plot', str(out_png)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out_json.read_text())
    names = {(r['mode'], r['name']) for r in result['timings']}
    # regnetx_400mf ships in mmdet and timm (torchvision's 400MF rounds differently).
    for expected in [('inference', 'mmdet RegNet (NCHW)'), ('inference', 'timm (NCHW)'),
                     ('inference', 'ours deploy + channels_last'), ('train', 'ours (NCHW)'),
                     ('train', 'ours with_cp (NCHW)')]:
        assert expected in names
    assert ('train', 'ours deploy + channels_last') not in names
    for row in result['timings']:
        assert row['seconds'] > 0 and row['baseline'] == 'mmdet RegNet (NCHW)'
    assert {r['name'] for r in result['memory']} >= {'ours (NCHW)', 'ours with_cp (NCHW)'}
    assert result['sgemm_gflops'] > 0
    assert '| inference | ours deploy + channels_last |' in out_md.read_text()
    assert out_png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_benchmark_tool_detector_mode(tmp_path):
    out_json = tmp_path / 'd.json'
    cmd = [sys.executable, str(ROOT / 'tools/benchmark.py'), '--modes', 'detector', '--batch', '1',
           '--size', '64', '64', '--rounds', '1', '--warmup', '0', '--threads', '1',
           '--json', str(out_json)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out_json.read_text())['timings']
    assert {(r['mode'], r['name']) for r in rows} >= {
        ('detector train', 'mmdet RegNet Mask R-CNN'), ('detector train', 'ours Mask R-CNN'),
        ('detector predict', 'ours Mask R-CNN channels_last')}
    assert all(r['baseline'] == 'mmdet RegNet Mask R-CNN' for r in rows)


def test_every_training_candidate_updates_its_batch_norm():
    """The training rows compare equal work: each candidate in train mode normalises with batch
    statistics and updates its running ones (mmdet's RegNet defaults to norm_eval=True, which
    freezes BN and would make its training step cheaper)."""
    import torch

    from regnet_backbone.benchmark import candidates_for
    candidates = [c for c in candidates_for('regnetx_400mf') if not c.inference_only]
    assert {'mmdet RegNet (NCHW)', 'ours (NCHW)', 'timm (NCHW)'} <= {c.name for c in candidates}
    for candidate in candidates:
        model = candidate.build()
        model.train()
        norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        before = [m.running_mean.clone() for m in norms]
        model(torch.randn(2, 3, 64, 64))
        assert norms and all(m.training for m in norms), candidate.name
        assert all(not torch.equal(b, m.running_mean) for b, m in zip(before, norms)), candidate.name


def test_matrix_and_families_tiny_run(tmp_path):
    """--device cpu --modes matrix families: every implementation and mode gets a row or a
    recorded skip, ours gets a ratio to each rival, families get pairs and a picture."""
    out_json, out_md, out_png = tmp_path / 'm.json', tmp_path / 'm.md', tmp_path / 'm.png'
    cmd = [sys.executable, str(ROOT / 'tools/benchmark.py'), '--device', 'cpu',
           '--modes', 'matrix', 'families', '--archs', 'regnetx_400mf', '--shapes', '2x32x32',
           '--matrix-modes', 'fp32', 'channels_last', 'channels_last+deploy',
           '--rivals', 'torchvision', 'timm', '--onnx', '--families-batch', '2',
           '--families-res', '32', '--families-models', 'RegNetX-4.0GF', 'ResNet-50',
           'RegNetY-400MF', '--rounds', '1', '--warmup', '1', '--threads', '1',
           '--json', str(out_json), '--markdown', str(out_md), '--plot', str(out_png)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out_json.read_text())
    rows = result['matrix']['rows']
    keys = {(r['implementation'], r['mode'], r['task']) for r in rows}
    assert keys >= {('ours', 'fp32', 'inference'), ('ours', 'channels_last+deploy', 'inference'),
                    ('ours', 'channels_last', 'train'), ('timm', 'channels_last', 'train'),
                    ('onnxruntime', 'fp32', 'inference')}
    assert ('ours', 'channels_last+deploy', 'train') not in keys  # deploy cannot train
    assert ('timm', 'channels_last+deploy', 'inference') not in keys  # nor can a rival fold BN
    for row in rows:
        assert row['images_per_s'] > 0 and row['peak_mb'] is None  # no CUDA memory on a CPU
        if row['implementation'] == 'ours':
            # onnxruntime runs fp32 inference only: the one row of ours it is compared with.
            both = (row['mode'], row['task']) == ('fp32', 'inference')
            assert set(row['vs']) == ({'timm', 'onnxruntime'} if both else {'timm'})
    deploy = next(r for r in rows if r['mode'] == 'channels_last+deploy')
    assert deploy['vs']['timm']['rival_mode'] == 'channels_last'  # the rival cannot fold BN
    skipped = result['matrix']['skipped']
    assert any(s['implementation'] == 'torchvision' and 'ships no regnetx_400mf' in s['reason']
               for s in skipped)

    families = result['families']
    assert {r['model'] for r in families['rows']} == {'RegNetY-400MF', 'RegNetX-4.0GF',
                                                      'ResNet-50'}
    assert [(p['regnet'], p['rival']) for p in families['pairs']] == [('RegNetX-4.0GF',
                                                                      'ResNet-50')]
    assert families['pairs'][0]['inference_ratio'] > 0 and families['pairs'][0]['train_ratio'] > 0
    text = out_md.read_text()
    assert '## Matrix on' in text and '## Families on' in text and 'vs timm' in text
    assert 'torchvision ships no regnetx_400mf' in text
    assert out_png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_a_mode_that_fails_is_a_recorded_skip(monkeypatch):
    """torch.compile failing (no compiler, say) and a rival missing an arch are skips with the
    reason, while the other rows are still timed."""
    import torch

    from regnet_backbone import benchmark as bench

    def broken_compile(model, *args, **kwargs):
        def run(*a, **k):
            raise RuntimeError('InvalidCxxCompiler: No working C++ compiler found')
        return run
    monkeypatch.setattr(torch, 'compile', broken_compile)
    result = bench.run_matrix(torch.device('cpu'), ['regnetx_200mf'], [(1, 32, 32)],
                              ['fp32', 'compile'], tasks=['inference'], rivals=['mmdet'],
                              rounds=1, warmup=1)
    assert [(r['implementation'], r['mode']) for r in result.rows] == [('ours', 'fp32')]
    reasons = {(s['implementation'], s.get('mode', 'all')): s['reason'] for s in result.skipped}
    assert 'No working C++ compiler' in reasons[('ours', 'compile')]
    assert 'ships no regnetx_200mf' in reasons[('mmdet', 'all')]
    assert 'InvalidCxxCompiler' in bench.matrix_markdown(result)


def test_cuda_without_a_gpu_and_bad_modes_are_one_line_errors(monkeypatch, capsys):
    import importlib.util

    import torch
    spec = importlib.util.spec_from_file_location('benchmark_tool', ROOT / 'tools/benchmark.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert tool.main(['--device', 'cuda']) == 1
    assert capsys.readouterr().err.startswith('error: --device cuda: torch sees no CUDA device')
    assert tool.main(['--modes', 'matrix', '--matrix-modes', 'fp8']) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: mode 'fp8'") and err.count('\n') == 1


def test_scaling_mode_tiny_run(tmp_path):
    """--modes scaling: the base and each scaled network get counts, activation memory and
    times at their scaled input size; each strategy gets its slopes; one picture."""
    out_json, out_md, out_png = tmp_path / 's.json', tmp_path / 's.md', tmp_path / 's.png'
    cmd = [sys.executable, str(ROOT / 'tools/benchmark.py'), '--modes', 'scaling',
           '--scaling-arch', 'regnetx_200mf', '--scaling-factors', '2', '--scaling-strategies',
           'dWr', 'r', '--scaling-size', '32', '--scaling-batch', '2', '--rounds', '1',
           '--warmup', '0', '--threads', '1',
           '--json', str(out_json), '--markdown', str(out_md), '--plot', str(out_png)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out_json.read_text())['scaling']
    assert [(r['strategy'], r['s']) for r in result['rows']] == [('base', 1.0), ('dWr', 2.0),
                                                                  ('r', 2.0)]
    rows = {r['strategy']: r for r in result['rows']}
    # r at s = 2 runs at 32 x sqrt(2) = 45.3 -> 44 (a multiple of 4); the base at 32
    assert rows['r']['input_size'] == [44, 44] and rows['base']['input_size'] == [32, 32]
    for r in result['rows']:
        assert r['inference_s'] > 0 and r['train_s'] > 0 and r['activation_mb'] > 0
        assert r['inference_vs_base'] > 0 and r['train_vs_base'] > 0  # base timed alongside
    assert rows['base']['train_vs_base'] == 1.0
    assert rows['r']['acts'] > rows['dWr']['acts']
    slopes = {e['strategy']: e for e in result['slopes']}
    assert set(slopes) == {'dWr', 'r'} and slopes['dWr']['pycls'] == 'd1_w8_g8_r1'
    assert abs(slopes['dWr']['predicted_acts'] - 0.6) < 1e-12
    assert all(slopes[k]['acts'] is not None and slopes[k]['train_vs_base'] is not None
               for k in slopes)
    assert '## Model scaling on' in out_md.read_text()
    assert out_png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
