"""The defaults that differ between mmdet's and mmpretrain's ``RegNet`` (``out_indices``,
``norm_eval``) follow the codebase whose config builds the backbone, everywhere the question
"what will this backbone do" is asked: the backbone itself, the study's checks and the export.

The expected values come from the incumbents: their ``RegNet`` signatures, and their modules
built from their own published configs. The configs are built under their default scope, as
their tools build them; a config built without its scope would not show the difference.
"""
import inspect
import os.path as osp
from pathlib import Path

import pytest
import torch
from mmengine.registry import DefaultScope

import regnet_backbone  # noqa: F401  (registers RegNetBackbone)
from regnet_backbone import RegNetBackbone
from regnet_backbone.runtime.config import load_config

ROOT = Path(__file__).resolve().parents[1]
MMPRETRAIN_CONFIG = (Path(__import__('mmpretrain').__file__).parent / '.mim' / 'configs' /
                     'regnet' / 'regnetx-400mf_8xb128_in1k.py')
DET_DEMO = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_regnetx_400mf_fpn_synthetic.py')


def signature_defaults(cls):
    parameters = inspect.signature(cls).parameters
    return {name: parameters[name].default for name in ('out_indices', 'norm_eval')}


def test_direct_construction_takes_mmdets_defaults_and_mmpretrains_under_its_scope():
    from mmdet.models.backbones import RegNet as MMDetRegNet
    from mmpretrain.models.backbones import RegNet as MMPretrainRegNet
    mmdet, mmpretrain = signature_defaults(MMDetRegNet), signature_defaults(MMPretrainRegNet)
    assert mmdet != mmpretrain  # the reason this file exists
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = RegNetBackbone('regnetx_200mf')
    assert (model.out_indices, model.norm_eval) == (tuple(mmdet['out_indices']),
                                                    mmdet['norm_eval'])
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = RegNetBackbone('regnetx_200mf')
        explicit = RegNetBackbone('regnetx_200mf', out_indices=(1, 3), norm_eval=True)
    assert (model.out_indices, model.norm_eval) == (tuple(mmpretrain['out_indices']),
                                                    mmpretrain['norm_eval'])
    assert (explicit.out_indices, explicit.norm_eval) == ((1, 3), True)  # given: kept


def user_config(tmp_path) -> str:
    """mmpretrain's published RegNetX-400MF recipe with the type changed, nothing else."""
    path = tmp_path / 'regnetx_400mf_ours.py'
    path.write_text(f"_base_ = [{str(MMPRETRAIN_CONFIG)!r}]\n"
                    "custom_imports = dict(imports=['regnet_backbone'], "
                    "allow_failed_imports=False)\n"
                    "model = dict(backbone=dict(type='RegNetBackbone'))\n")
    return str(path)


def test_an_mmpretrain_config_builds_a_backbone_that_does_what_mmpretrains_does(tmp_path):
    from mmpretrain.registry import MODELS
    ours_cfg = load_config(user_config(tmp_path))
    theirs_cfg = load_config(str(MMPRETRAIN_CONFIG))
    assert ours_cfg.default_scope == 'mmpretrain'
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ours = MODELS.build(ours_cfg.model).backbone
        theirs = MODELS.build(theirs_cfg.model).backbone
    assert type(ours) is RegNetBackbone and type(theirs).__name__ == 'RegNet'
    assert ours.out_indices == tuple(theirs.out_indices)
    assert ours.norm_eval == theirs.norm_eval
    x = torch.randn(1, 3, 64, 64)
    ours.eval(), theirs.eval()
    with torch.no_grad():
        assert [o.shape for o in ours(x)] == [o.shape for o in theirs(x)]


def test_a_study_pretrains_with_an_mmpretrain_recipe_that_trains_its_bn(tmp_path):
    """mmpretrain's RegNet recipe trains its BatchNorm (``norm_eval=False``): ``--pretrain``
    must accept it, where it once read mmdet's default and refused it as frozen."""
    from regnet_backbone.study import setup
    from regnet_backbone.study.recipe import untrained_weights
    config = user_config(tmp_path)
    assert untrained_weights(load_config(config)) == []
    data = tmp_path / 'data'
    from regnet_backbone.demo.synthetic import make_synthetic_coco
    det = make_synthetic_coco(str(data), num_train=2, num_val=1, size=64, seed=0)
    detector = tmp_path / 'det_bn.py'  # the demo detector with the classifier's norm (BN)
    detector.write_text(f"_base_ = {DET_DEMO!r}\n"
                        "model = dict(backbone=dict(norm_cfg=dict(_delete_=True, type='BN', "
                        "requires_grad=True)))\n")
    s = setup(str(detector), str(tmp_path / 'study'), space='regnetx', n=1,
              flops=(100e6, 200e6), data_root=det.root, pretrain=config)
    assert s['init'] == 'pretrain'


@pytest.mark.parametrize('scope_config', ['mmpretrain', 'mmdet'])
def test_export_gives_the_outputs_of_the_codebase_that_the_config_belongs_to(
        scope_config, tmp_path):
    from regnet_backbone.deploy import load_for_export
    config = user_config(tmp_path) if scope_config == 'mmpretrain' else osp.join(
        ROOT, 'configs', 'mask_rcnn_regnetx_3.2gf_fpn.py')
    cfg = load_config(config)
    from regnet_backbone.runtime.config import codebase_of
    if codebase_of(cfg) == 'mmpretrain':
        from mmpretrain.models.backbones import RegNet
    else:
        from mmdet.models.backbones import RegNet
    model = load_for_export(config=config)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outputs = model(x)
    assert len(outputs) == len(signature_defaults(RegNet)['out_indices'])
