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
