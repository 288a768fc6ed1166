"""tools/design_space.py (sample, fit, edf) and tools/analyze_complexity.py with JSON archs.

Most calls run the tool's ``main`` in this process (the CLI is thin, and a subprocess per call
would mostly time the torch import); one subprocess checks the real command line.
"""
import importlib.util
import json
from pathlib import Path

import pytest

from regnet_backbone.design import complexity, resolve_arch

ROOT = Path(__file__).resolve().parents[1]


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(f'_tool_{name}', ROOT / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL = _load_tool('design_space')
ANALYZE = _load_tool('analyze_complexity')


def run(capsys, *argv, tool=TOOL):
    """(exit code, stdout, stderr) of the tool's main: 1 for a user error (one ``error:`` line),
    2 for a command line argparse refuses."""
    try:
        code = tool.main([str(a) for a in argv]) or 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_sample_writes_json_list(capsys, tmp_path):
    out = tmp_path / 'samples.json'
    code, _, err = run(capsys, 'sample', 'regnetx', '--n', 3, '--flops', 150e6, 250e6, '--seed',
                       1, '--input-size', 224, 224, '--out', out)
    assert code == 0, err
    items = json.loads(out.read_text())
    assert len(items) == 3
    for item in items:
        assert set(item) == {'arch', 'flops', 'params', 'acts'}
        assert set(item['arch']) == {'w0', 'wa', 'wm', 'depth', 'group_width',
                                     'bottleneck_ratio', 'se_ratio'}
        assert 150e6 <= item['flops'] <= 250e6
        # Counted as tools/analyze_complexity.py counts (1000-class head, 224x224).
        cx = complexity(resolve_arch(item['arch']), input_size=(224, 224), num_classes=1000)
        assert (item['flops'], item['params'], item['acts']) == (cx['flops'], cx['params'],
                                                                 cx['acts'])
    code, stdout, _ = run(capsys, 'sample', 'anynetx_e', '--n', 2, '--seed', 1)
    items = json.loads(stdout)
    assert set(items[0]['arch']) == {'depths', 'widths', 'group_widths', 'bottleneck_ratios',
                                     'se_ratio'}


def test_sample_errors_are_one_line(capsys):
    code, out, err = run(capsys, 'sample', 'regnetx', '--n', 2, '--flops', 1, 2,
                         '--max-draws', 300)
    assert code == 1 and out == ''
    assert err.startswith('error: got 0 of 2') and 'widen' in err and err.count('\n') == 1


def test_fit_json_and_text(capsys):
    code, out, err = run(capsys, 'fit', '--arch', 'regnetx_200mf', '--json')
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {'w0', 'wa', 'wm', 'depth', 'e_fit'}
    assert result['depth'] == 13 and result['e_fit'] == 0.0  # on the grid: w0 24, wm 2.49
    # RegNetX-200MF's stages as lists: depths 1, 1, 4, 7 and widths 24, 56, 152, 368.
    code, out, _ = run(capsys, 'fit', '--depths', 1, 1, 4, 7, '--widths', 24, 56, 152, 368)
    assert code == 0 and out.startswith('w0=') and 'depth=13' in out and 'e_fit=0' in out
    code, out, _ = run(capsys, 'fit', '--arch',
                       '{"depths": [2, 1], "widths": [64, 16], "group_widths": [8, 8]}', '--json')
    assert code == 0 and json.loads(out)['e_fit'] > 0
    code, _, err = run(capsys, 'fit', '--depths', 1, 2, '--widths', 32)
    assert code == 2 and 'error: --depths has 2 values' in err
    code, _, err = run(capsys, 'fit', '--arch', '{"w0": 24,')
    assert code == 2 and 'is not valid JSON' in err


def _write_study(folder, trials):
    folder.mkdir()
    (folder / 'results.json').write_text(json.dumps(dict(study={}, trials=trials)))
    return folder / 'results.json'


def _trial(i, status, flops, value=None, key='coco/bbox_mAP'):
    best = {} if value is None else {key: value}
    return dict(trial=i, arch={}, flops=flops, params=flops // 100, acts=flops // 50,
                status=status, metrics_final=best, metrics_best=best, error=None,
                wall_time=10.0)


def test_edf_json_by_hand(capsys, tmp_path):
    a = _write_study(tmp_path / 'study_a', [
        _trial(0, 'done', 100, 0.30), _trial(1, 'done', 110, 0.40), _trial(2, 'failed', 120),
        _trial(3, 'done', 300, 0.35)])
    b = _write_study(tmp_path / 'study_b', [_trial(0, 'done', 100, 0.25),
                                            _trial(1, 'pending', 100)])
    code, out, err = run(capsys, 'edf', a, b, '--metric', 'coco/bbox_mAP', '--json')
    assert code == 0, err
    studies = json.loads(out)['studies']
    assert [s['name'] for s in studies] == ['study_a', 'study_b']
    # Errors 100 (1 - v): 70, 60, 65 -> ascending 60, 65, 70 with F = 1/3, 2/3, 1.
    sa = studies[0]
    assert sa['n'] == 3 and sa['errors'] == pytest.approx([60, 65, 70])
    assert sa['cdf'] == pytest.approx([1 / 3, 2 / 3, 1]) and sa['weights'] == pytest.approx(
        [1 / 3] * 3)
    assert studies[1]['errors'] == pytest.approx([75]) and studies[1]['cdf'] == [1.0]
    # Normalised by flops in 2 bins over [100, 300]: 100 and 110 share [100, 200) (1/4 each),
    # 300 is alone in [200, 300] (1/2). Sorted errors 60 (110), 65 (300), 70 (100).
    code, out, _ = run(capsys, 'edf', a, '--metric', 'coco/bbox_mAP', '--normalize', 'flops',
                       '--bins', 2, '--json')
    sa = json.loads(out)['studies'][0]
    assert sa['weights'] == pytest.approx([1 / 4, 1 / 2, 1 / 4])
    assert sa['cdf'] == pytest.approx([1 / 4, 3 / 4, 1])
    code, out, _ = run(capsys, 'edf', a, b, '--metric', 'coco/bbox_mAP')
    assert 'study_a: n=3 min=60.00 mean=65.00' in out and 'KS distance' in out


def test_edf_percent_metric_and_plot(capsys, tmp_path):
    a = _write_study(tmp_path / 'seg', [_trial(0, 'done', 100, 40.0, key='mIoU'),
                                        _trial(1, 'done', 200, 45.5, key='mIoU')])
    png = tmp_path / 'edf.png'
    code, out, err = run(capsys, 'edf', a, '--metric', 'mIoU', '--plot', png, '--json')
    assert code == 0, err
    assert json.loads(out)['studies'][0]['errors'] == pytest.approx([54.5, 60.0])  # 100 - v
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_edf_errors_are_one_line(capsys, tmp_path):
    code, _, err = run(capsys, 'edf', tmp_path / 'missing.json', '--metric', 'mIoU')
    assert code == 1 and err.startswith('error: ') and 'not found' in err
    assert err.count('\n') == 1
    bad = tmp_path / 'bad.json'
    bad.write_text('{not json')
    code, _, err = run(capsys, 'edf', bad, '--metric', 'mIoU')
    assert code == 1 and err.startswith('error: ') and 'not valid JSON' in err
    a = _write_study(tmp_path / 'a', [_trial(0, 'done', 100, 0.3), _trial(1, 'done', 300, 0.4)])
    code, _, err = run(capsys, 'edf', a, '--metric', 'coco/bbox_mAP', '--normalize', 'flops',
                       '--bins', 3)
    assert code == 1 and 'complexity bin 1' in err and 'is empty' in err
    c = _write_study(tmp_path / 'c', [_trial(0, 'done', 100, 0.3, key='my/score')])
    code, _, err = run(capsys, 'edf', c, '--metric', 'my/score')
    assert code == 1 and "pass scale='fraction'" in err
    pending = _write_study(tmp_path / 'p', [_trial(0, 'pending', 100)])
    code, _, err = run(capsys, 'edf', pending, '--metric', 'mIoU')
    assert code == 1 and 'no done trial to compare' in err
    code, out, _ = run(capsys, 'edf', c, '--metric', 'my/score', '--scale', 'fraction', '--json')
    assert code == 0 and json.loads(out)['studies'][0]['errors'] == pytest.approx([70.0])


def test_help_states_the_error_rules(run_tool):
    proc = run_tool(ROOT / 'tools' / 'design_space.py', 'edf', '--help', timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = ' '.join(proc.stdout.split())
    assert '100*(1-v)' in text and 'coco/bbox_mAP' in text
    assert '100-v' in text and 'mIoU' in text and 'accuracy/top1' in text


def test_analyze_complexity_accepts_json_archs(capsys):
    # RegNetX-200MF as a parameter dict: the pycls model zoo's exact counts.
    regnet = '{"w0": 24, "wa": 36.44, "wm": 2.49, "depth": 13, "group_width": 8}'
    anynet = ('{"depths": [1, 1, 4, 7], "widths": [24, 56, 152, 368], '
              '"group_widths": [8, 8, 8, 8]}')
    code, out, err = run(capsys, regnet, anynet, 'regnetx_200mf', '--json', tool=ANALYZE)
    assert code == 0, err
    rows = json.loads(out)
    for row in rows:
        assert (row['flops'], row['params'], row['acts']) == (199040872, 2684792, 2164056)
    assert rows[0]['arch'] == json.loads(regnet) and rows[2]['arch'] == 'regnetx_200mf'
    code, out, _ = run(capsys, regnet, tool=ANALYZE)
    assert code == 0 and 'flops=199,040,872' in out
    code, _, err = run(capsys, '{"w0": 24,', tool=ANALYZE)
    assert code == 2 and 'not valid JSON' in err
    code, _, err = run(capsys, '{"depths": [1], "widths": [36], "group_widths": [8]}',
                       tool=ANALYZE)
    assert code == 2 and 'not a multiple of group width' in err
    # Backbone alone: without pycls's head, 368 x 1000 weights + 1000 biases.
    assert rows[0]['backbone_params'] == 2684792 - 369000


# --- scale -------------------------------------------------------------------------------------
def test_scale_json_and_arch_line(capsys):
    code, out, err = run(capsys, 'scale', 'regnety_400mf', '--factor', 4, '--json')
    assert code == 0, err
    data = json.loads(out)
    assert {'arch', 'factors', 'flops', 'params', 'acts', 'input_size'} <= set(data)
    # By hand (tests/test_scaling.py): dWr x4 of RegNetY-400MF at 224 -> 240.
    assert data['arch'] == dict(depths=[1, 3, 7, 7], widths=[80, 192, 352, 768],
                                group_widths=[16, 16, 16, 16], bottleneck_ratios=[1.0] * 4,
                                se_ratio=0.25)
    assert data['input_size'] == [240, 240]
    assert abs(data['factors']['w'] - 4**0.4) < 1e-12
    cx = complexity(resolve_arch(data['arch']), input_size=(240, 240), num_classes=1000)
    assert (data['flops'], data['params'], data['acts']) == (cx['flops'], cx['params'], cx['acts'])

    code, out, err = run(capsys, 'scale', 'regnety_400mf', '--factor', 4)
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith('arch=dict('))
    assert eval(line[len('arch='):], {'dict': dict}) == data['arch']  # a ready config line


def test_scale_to_flops_at_a_detection_size(capsys):
    code, out, err = run(capsys, 'scale', 'regnetx_400mf', '--flops', 1.6e9, '--strategy', 'w',
                         '--input-size', 224, 224, '--json')
    assert code == 0, err
    data = json.loads(out)
    assert abs(data['flops'] / 1.6e9 - 1) <= 0.02 and data['input_size'] == [224, 224]
    code, out, err = run(capsys, 'scale', 'regnetx_400mf', '--factor', 2, '--strategy', 'r',
                         '--input-size', 800, 1333, '--json')
    data = json.loads(out)
    # r = sqrt(2): 800 -> 1131.4 -> 1132, 1333 -> 1885.1 -> 1884 (multiples of 4)
    assert code == 0 and data['input_size'] == [1132, 1884]


def test_scale_errors_are_one_line(capsys):
    code, _, err = run(capsys, 'scale', 'regnetx_3.2gf', '--flops', 0.3e9, '--strategy', 'd')
    assert code == 1 and err.startswith('error: cannot scale') and err.count('\n') == 1
    code, _, err = run(capsys, 'scale', 'regnetx_400mf', '--factor', 2, '--strategy', 'q1')
    assert code == 1 and 'cannot read scaling strategy' in err
    code, _, err = run(capsys, 'scale', 'regnetx_400mf', '--factor', 2, '--config', 'x.py')
    assert code == 2 and '--config and --out go together' in err
    code, _, err = run(capsys, 'scale', 'regnetx_400mf', '--factor', 2, '--config', 'x.py',
                       'y.py', '--out', 'x_out.py')
    assert code == 2 and 'one --out PATH per CONFIG' in err
    code, _, err = run(capsys, 'scale', 'regnetx_400mf', '--factor', 2, '--config', 'missing.py',
                       '--out', 'x_out.py')
    assert code == 1 and err == 'error: config file not found: missing.py\n'
    code, _, err = run(capsys, 'scale', 'regnetx_400mf', '--factor', 2, '--flops', 1e9)
    assert code == 2 and 'not allowed with' in err


def test_scale_config_for_pretraining_follows_the_arch(capsys, tmp_path):
    from mmengine.config import Config
    out = tmp_path / 'cls.py'
    code, stdout, err = run(capsys, 'scale', 'regnetx_400mf', '--factor', 16, '--config',
                            ROOT / 'configs' / 'regnetx_400mf_1xb128-10e_in1k.py', '--out', out)
    assert code == 0, err
    cfg = Config.fromfile(str(out))
    widths = cfg.model.backbone.arch['widths']
    assert cfg.model.head.in_channels == widths[-1] != 384
    assert 'init_cfg' not in cfg.model.backbone
    # r = 16^0.05; classification sizes round to multiples of 4 (pycls)
    r = 16**0.05
    crop = next(t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomResizedCrop')
    assert crop.scale == round(224 * r / 4) * 4 == 256
    edge = next(t for t in cfg.val_dataloader.dataset.pipeline if t.type == 'ResizeEdge')
    assert edge.scale == round(256 * r / 4) * 4 == 296
    assert 'model.head.in_channels: 384 ->' in stdout and 'multiples of 4' in stdout


def test_scale_config_builds_and_runs_mask_rcnn(capsys, tmp_path):
    """The --config output builds a Mask R-CNN on the CPU and runs a forward pass."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import DefaultScope
    import torch
    out = tmp_path / 'mask_rcnn_scaled.py'
    code, stdout, err = run(capsys, 'scale', 'regnetx_200mf', '--factor', 2, '--config',
                            ROOT / 'configs' / 'mask_rcnn_regnetx_400mf_fpn.py', '--out', out,
                            '--json')
    assert code == 0, err
    data = json.loads(stdout)
    (written, ) = data['configs']
    assert written['out'] == str(out) and written['notes']
    cfg = Config.fromfile(str(out))
    assert cfg.model.backbone.arch == data['arch']
    assert cfg.model.neck.in_channels == data['arch']['widths']
    # The image scale follows r = 2^0.05, rounded to multiples of 32:
    # 1333 x 1.0353 = 1380.1 -> 43.1 x 32 = 1376; 800 x 1.0353 = 828.3 -> 25.9 -> 832.
    r = 2**0.05
    resize = next(t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'Resize')
    assert tuple(resize.scale) == (round(1333 * r / 32) * 32, round(800 * r / 32) * 32)
    assert tuple(resize.scale) == (1376, 832)
    assert any('Resize.scale: (1333, 800) -> (1376, 832)' in n for n in written['notes'])
    cfg.model.test_cfg.rpn.update(nms_pre=100, max_per_img=32)
    for extractor in (cfg.model.roi_head.bbox_roi_extractor, cfg.model.roi_head.mask_roi_extractor):
        extractor.roi_layer.sampling_ratio = 2  # mmcv's CPU RoIAlign is slow when adaptive
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
    model.init_weights()
    model.eval()
    from mmdet.structures import DetDataSample
    sample = DetDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64),
                                         scale_factor=(1.0, 1.0), batch_input_shape=(64, 64)))
    batch = dict(inputs=[torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)],
                 data_samples=[sample])
    with torch.no_grad():
        feats = model.extract_feat(model.data_preprocessor(batch, False)['inputs'])
        results = model(**model.data_preprocessor(batch, False), mode='predict')
    assert [f.shape[1] for f in feats] == [256] * 5  # FPN outputs from the scaled widths
    assert len(results) == 1 and hasattr(results[0].pred_instances, 'masks')
