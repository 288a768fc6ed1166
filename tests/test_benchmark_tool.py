"""tools/benchmark.py runs end to end in a tiny configuration (no timing is asserted), and the
timing core (regnet_backbone/benchmark.py) times and measures what it says.

The whole runs of the tool are marked slow (``make test-slow``); ``make test`` keeps its argument
handling and one tiny in-process measurement of the matrix and of the scaling mode."""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tools(monkeypatch):
    """tools/ on sys.path, as tools/benchmark.py puts it: ``import benchmarks`` works."""
    monkeypatch.syspath_prepend(str(ROOT / 'tools'))
    return ROOT / 'tools'


@pytest.mark.slow
def test_benchmark_tool_tiny_run(tmp_path, run_tool):
    out_json, out_md, out_png = tmp_path / 'b.json', tmp_path / 'b.md', tmp_path / 'b.png'
    args = [ROOT / 'tools/benchmark.py', '--arch', 'regnetx_400mf', '--batch', '1',
            '--size', '64', '64', '--rounds', '1', '--warmup', '1', '--threads', '1',
            '--json', str(out_json), '--markdown', str(out_md), '--plot', str(out_png)]
    run = run_tool(*args)
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
    text = out_md.read_text()
    assert '| inference | ours deploy + channels_last |' in text
    # The goals come from docs/benchmark_goals.json: one table row per goal there, measured or
    # (the detector's, not run here) said to be not measured.
    goals = json.loads((ROOT / 'docs/benchmark_goals.json').read_text())
    for goal in goals:
        assert f"| {goal['text']} | {goal['op']} " in text
    assert text.count('not measured in this run') == 1
    assert out_png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


@pytest.mark.slow
def test_benchmark_tool_detector_mode(tmp_path, run_tool):
    out_json = tmp_path / 'd.json'
    args = [ROOT / 'tools/benchmark.py', '--modes', 'detector', '--batch', '1',
            '--size', '64', '64', '--rounds', '1', '--warmup', '0', '--threads', '1',
            '--json', str(out_json)]
    run = run_tool(*args)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out_json.read_text())['timings']
    assert {(r['mode'], r['name']) for r in rows} >= {
        ('detector train', 'mmdet RegNet Mask R-CNN'), ('detector train', 'ours Mask R-CNN'),
        ('detector predict', 'ours Mask R-CNN channels_last')}
    assert all(r['baseline'] == 'mmdet RegNet Mask R-CNN' for r in rows)


def test_every_training_candidate_updates_its_batch_norm(tools):
    """The training rows compare equal work: each candidate in train mode normalises with batch
    statistics and updates its running ones (mmdet's RegNet defaults to norm_eval=True, which
    freezes BN and would make its training step cheaper)."""
    import torch

    from benchmarks.cpu_report import candidates_for
    candidates, skipped = candidates_for('regnetx_400mf')
    candidates = [c for c in candidates if 'train' in c.candidate.tasks]
    assert {'mmdet RegNet (NCHW)', 'ours (NCHW)', 'timm (NCHW)'} <= {c.name for c in candidates}
    # torchvision's 400MF rounds differently: it ships no regnetx_400mf, which is a skip.
    assert [s['name'] for s in skipped] == ['torchvision (NCHW)']
    for candidate in candidates:
        model = candidate.build()
        model.train()
        norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        before = [m.running_mean.clone() for m in norms]
        model(torch.randn(2, 3, 64, 64))
        assert norms and all(m.training for m in norms), candidate.name
        assert all(not torch.equal(b, m.running_mean) for b, m in zip(before, norms)), candidate.name


@pytest.mark.slow
def test_matrix_and_families_tiny_run(tmp_path, run_tool):
    """--device cpu --modes matrix families: every implementation and mode gets a row or a
    recorded skip, ours gets a ratio to each rival, families get pairs and a picture."""
    out_json, out_md, out_png = tmp_path / 'm.json', tmp_path / 'm.md', tmp_path / 'm.png'
    args = [ROOT / 'tools/benchmark.py', '--device', 'cpu',
            '--modes', 'matrix', 'families', '--archs', 'regnetx_400mf', '--shapes', '2x32x32',
            '--matrix-modes', 'fp32', 'channels_last', 'channels_last+deploy',
            '--rivals', 'torchvision', 'timm', '--onnx', '--families-batch', '2',
            '--families-res', '32', '--families-models', 'RegNetX-4.0GF', 'ResNet-50',
            'RegNetY-400MF', '--rounds', '1', '--warmup', '1', '--threads', '1',
            '--json', str(out_json), '--markdown', str(out_md), '--plot', str(out_png)]
    run = run_tool(*args)
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


def test_a_mode_that_fails_is_a_recorded_skip(monkeypatch, tools):
    """torch.compile failing (no compiler, say) and a rival missing an arch are skips with the
    reason, while the other rows are still timed."""
    import torch

    from benchmarks import matrix as bench

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


@pytest.mark.slow
def test_scaling_mode_tiny_run(tmp_path, run_tool):
    """--modes scaling: the base and each scaled network get counts, activation memory and
    times at their scaled input size; each strategy gets its slopes; one picture."""
    out_json, out_md, out_png = tmp_path / 's.json', tmp_path / 's.md', tmp_path / 's.png'
    args = [ROOT / 'tools/benchmark.py', '--modes', 'scaling',
            '--scaling-arch', 'regnetx_200mf', '--scaling-factors', '2', '--scaling-strategies',
            'dWr', 'r', '--scaling-size', '32', '--scaling-batch', '2', '--rounds', '1',
            '--warmup', '0', '--threads', '1',
            '--json', str(out_json), '--markdown', str(out_md), '--plot', str(out_png)]
    run = run_tool(*args)
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


def test_interleaved_rounds_warm_up_first_and_drop_a_failing_step():
    """Each step is warmed up alone, then the rounds interleave A B A B...; a step that raises
    is dropped with its reason and the others still run; one sample per round."""
    import torch

    from regnet_backbone.benchmark import time_interleaved
    calls = []

    def broken():
        raise RuntimeError('out of memory\nsecond line')
    runners = {'a': lambda: calls.append('a'), 'bad': broken, 'b': lambda: calls.append('b')}
    skipped = {}
    samples = time_interleaved(runners, torch.device('cpu'), rounds=3, warmup=2, skipped=skipped)
    assert calls == ['a', 'a', 'b', 'b'] + ['a', 'b'] * 3
    assert set(samples) == {'a', 'b'} and all(len(s) == 3 and min(s) >= 0 for s in samples.values())
    assert skipped == {'bad': 'RuntimeError: out of memory'} and 'bad' not in runners


def test_scaling_measures_the_base_and_a_scaled_network_in_process(tools):
    """One tiny measurement of the scaling mode: r at s = 2 runs at 32 x sqrt(2) = 45.3 -> 44
    (a multiple of 4) with more activations than the base, and both are timed together."""
    import torch

    import benchmark_scaling
    result = benchmark_scaling.run_scaling(torch.device('cpu'), 'regnetx_200mf', [2.0], ['r'],
                                           batch=2, base_size=32, rounds=1, warmup=0,
                                           min_sample_s=0.0)
    base, scaled = result['rows']
    assert (base['strategy'], base['s'], base['input_size']) == ('base', 1.0, [32, 32])
    assert (scaled['strategy'], scaled['s'], scaled['input_size']) == ('r', 2.0, [44, 44])
    assert scaled['acts'] > base['acts'] and scaled['flops'] > base['flops']
    for row in (base, scaled):
        assert row['inference_s'] > 0 and row['train_s'] > 0 and row['activation_mb'] > 0
    assert base['train_vs_base'] == 1.0 and scaled['train_vs_base'] > 0
    slope, = result['slopes']
    assert slope['predicted_acts'] == 1.0 and slope['acts'] > 0 and not result['skipped']


def test_cpu_peak_memory_of_a_step_in_a_fresh_process(run_tool):
    """On a CPU the probe reads the process's resident high-water mark against the resident set
    before the step. A step that writes every byte of a 200 MiB tensor (50 Mi float32) keeps
    those pages resident at its peak: at least 200 MiB (how much more depends on the allocator
    and on the process's earlier peak, so there is no upper bound), and less than the process's
    whole high-water mark, which includes what was resident before. Without ``cpu_rss`` there is
    no figure."""
    code = ('import torch\n'
            'from regnet_backbone.benchmark import peak_step_memory_mb\n'
            "cpu = torch.device('cpu')\n"
            'assert peak_step_memory_mb(lambda: None, cpu) is None\n'
            'step = peak_step_memory_mb(lambda: torch.ones(50 * 2**20), cpu, cpu_rss=True)\n'
            "hwm = next(line for line in open('/proc/self/status') if line.startswith('VmHWM:'))\n"
            'print(step, int(hwm.split()[1]) / 1024)\n')
    run = run_tool('-c', code, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    step, whole = map(float, run.stdout.split()[-2:])
    assert 200 <= step < whole  # MiB
