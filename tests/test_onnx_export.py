"""ONNX export: onnxruntime reproduces PyTorch's eval-mode stage outputs, with standard ops only.

References are the PyTorch model's own eval-mode outputs (for the folded export: the *unfolded*
model's), computed in the test; onnx and onnxruntime are pinned test dependencies.
``tools/gpu_check.py`` runs ``test_dynamic_export_matches_pytorch`` as its ONNX round trip.
"""
import builtins
import copy
import os
from pathlib import Path

import onnx
import onnxruntime
import pytest
import torch

from regnet_backbone import RegNetBackbone
from regnet_backbone.benchmark import relative_error
from regnet_backbone.deploy import (DeployError, MissingDependencyError, NonStandardOpError,
                                    check_standard_ops, export_onnx, load_for_export,
                                    onnxruntime_session)

ROOT = Path(__file__).resolve().parents[1]
ARCH = 'regnety_200mf'  # small, and with SE: ReduceMean, Sigmoid and Mul besides the convs


def _random_statistics(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial BN statistics and affine terms, so that folding them is really tested."""
    generator = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
            m.running_var.copy_(0.5 + torch.rand(n, generator=generator))
            m.weight.data.copy_(0.5 + 0.5 * torch.rand(n, generator=generator))
            m.bias.data.copy_(0.1 * torch.randn(n, generator=generator))
    return model.eval()


def _domains(path) -> set:
    model = onnx.load(str(path))
    return {node.domain for node in model.graph.node} | {o.domain for o in model.opset_import}


@pytest.mark.parametrize('fold', [False, True], ids=['eval', 'deploy'])
def test_dynamic_export_matches_pytorch(tmp_path, fold):
    torch.manual_seed(0)
    reference = _random_statistics(RegNetBackbone(ARCH, zero_init_residual=False))
    exported = copy.deepcopy(reference)
    if fold:
        exported.switch_to_deploy()
    path = tmp_path / 'backbone.onnx'
    report = export_onnx(exported, path, (1, 3, 64, 64), dynamic=True)

    assert report.output_names == ['stage0', 'stage1', 'stage2', 'stage3']
    assert _domains(path) <= {'', 'ai.onnx'}
    # Each conv of the network once, and no BN: switch_to_deploy folded it into the convs, or
    # (eval) the exporter's constant folding did. A kept BN would be an extra op per layer.
    if fold:
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in exported.modules())
    else:
        assert any(isinstance(m, torch.nn.BatchNorm2d) for m in exported.modules())
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    assert ops.count('Conv') == sum(isinstance(m, torch.nn.Conv2d) for m in reference.modules())
    assert 'BatchNormalization' not in ops and 'BatchNormalization' not in report.op_types
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    assert [o.name for o in session.get_outputs()] == report.output_names
    for shape in [(1, 3, 64, 64), (3, 3, 96, 128)]:  # two batch sizes, two image sizes
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = reference(x)
        got = session.run(None, {'input': x.numpy()})
        assert len(got) == len(expected) == 4
        for a, e in zip(got, expected):
            assert a.shape == tuple(e.shape)
            assert relative_error([a], [e]) < 1e-4


def test_out_indices_name_the_outputs(tmp_path):
    model = load_for_export(arch=ARCH, out_indices=(1, 3))
    report = export_onnx(model, tmp_path / 'two.onnx', (1, 3, 64, 64))
    session = onnxruntime_session(str(tmp_path / 'two.onnx'))
    assert [o.name for o in session.get_outputs()] == ['stage1', 'stage3'] == report.output_names
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
    for a, e in zip(session.run(None, {'input': x.numpy()}), expected):
        assert relative_error([a], [e]) < 1e-4


def test_cli_exports_a_config_with_a_checkpoint(tmp_path, run_tool):
    """tools/export_onnx.py on a detector config, with a detector-style checkpoint, folded."""
    torch.manual_seed(1)
    trained = _random_statistics(RegNetBackbone('regnetx_400mf', zero_init_residual=False))
    ckpt = tmp_path / 'detector.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in trained.state_dict().items()}}, ckpt)
    out = tmp_path / 'det_backbone.onnx'
    run = run_tool(ROOT / 'tools/export_onnx.py', ROOT / 'configs/mask_rcnn_regnetx_400mf_fpn.py',
                   out, '--checkpoint', ckpt, '--deploy', '--dynamic', '--opset', 17, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f'wrote {out}' in run.stdout
    assert _domains(out) <= {'', 'ai.onnx'}
    assert onnx.load(str(out)).opset_import[0].version == 17
    session = onnxruntime.InferenceSession(str(out), providers=['CPUExecutionProvider'])
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        expected = trained(x)
    got = session.run(None, {'input': x.numpy()})
    assert [o.name for o in session.get_outputs()] == [f'stage{i}' for i in range(4)]
    for a, e in zip(got, expected):
        assert relative_error([a], [e]) < 1e-4
    assert not [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]  # atomic: no leftovers


def test_non_standard_ops_are_refused():
    node = onnx.helper.make_node('Fancy', ['x'], ['y'], domain='com.example')
    graph = onnx.helper.make_graph(
        [node], 'g', [onnx.helper.make_tensor_value_info('x', onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info('y', onnx.TensorProto.FLOAT, [1])])
    with pytest.raises(NonStandardOpError, match='com.example: Fancy'):
        check_standard_ops(onnx.helper.make_model(graph))


def _block_import(monkeypatch, blocked):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.split('.')[0] == blocked:
            raise ImportError(f'No module named {blocked!r}')
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, '__import__', fake_import)


@pytest.mark.parametrize('blocked', ['onnx', 'onnxruntime'])
def test_missing_onnx_is_a_clear_error(tmp_path, monkeypatch, blocked):
    model = load_for_export(arch=ARCH)
    path = tmp_path / 'm.onnx'
    if blocked == 'onnxruntime':
        export_onnx(model, path, (1, 3, 64, 64))
    _block_import(monkeypatch, blocked)
    with pytest.raises(MissingDependencyError, match=f'pip install {blocked}'):
        if blocked == 'onnx':
            export_onnx(model, path, (1, 3, 64, 64))
        else:
            onnxruntime_session(str(path))
    if blocked == 'onnx':
        assert not path.exists()


def test_cli_errors_are_one_line(tmp_path, run_tool):
    # onnx hidden from the CLI: a finder that refuses it, installed before the tool runs.
    code = ('import sys, runpy\n'
            'class Block:\n'
            '    def find_spec(self, name, path=None, target=None):\n'
            "        if name.split('.')[0] == 'onnx': raise ImportError('No module named onnx')\n"
            'sys.meta_path.insert(0, Block())\n'
            f"sys.argv = ['export_onnx.py', '{ARCH}', r'{tmp_path / 'x.onnx'}']\n"
            f"runpy.run_path(r'{ROOT / 'tools/export_onnx.py'}', run_name='__main__')\n")
    stderr = []
    for args in (['-c', code],
                 [ROOT / 'tools/export_onnx.py', 'regnetx_999gf', tmp_path / 'y.onnx']):
        run = run_tool(*args, timeout=120)
        assert run.returncode == 1
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith('error: '), run.stderr
        stderr.append(lines[0])
    assert 'pip install onnx' in stderr[0]
    assert 'regnetx_999gf' in stderr[1]


def test_build_needs_exactly_one_source():
    with pytest.raises(DeployError):
        load_for_export()
    with pytest.raises(DeployError):
        load_for_export(arch=ARCH, config='x.py')


def test_a_backbone_argument_regnet_does_not_take_is_named(tmp_path):
    config = tmp_path / 'bad.py'
    config.write_text("model = dict(backbone=dict(type='RegNetBackbone', arch='regnetx_400mf', "
                      "depth=50))\n")
    with pytest.raises(DeployError, match=r'does not take: depth; remove them'):
        load_for_export(config=str(config))
    from regnet_backbone.errors import ArchitectureError
    config.write_text("model = dict(backbone=dict(type='RegNetBackbone', arch='regnetx_400m'))\n")
    with pytest.raises(ArchitectureError, match='regnetx_400mf'):  # the closest name, as it is
        load_for_export(config=str(config))
