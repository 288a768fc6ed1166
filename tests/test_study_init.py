"""How study trials get weights they can learn (tools/study.py setup --init / --pretrain /
--repeats, regnet_backbone.study and its recipe module), CI-sized.

* The shipped fine-tuning recipe (Mask R-CNN 1x: frozen_stages=1, norm_eval=True) is refused
  with one line naming --init scratch and --pretrain; with --init scratch every trial unfreezes
  everything and trains its norms (checked on the built model), and study.json says so, with
  the schedule; the from-scratch LSJ configs are accepted as written.
* Sampled archs that GroupNorm(32) cannot build are rejected draws, counted with their reason;
  the kept ones are the sampler's first archs whose every width divides by 32.
* --repeats K: the first K samples again with the next training seed.
* A two-stage trial (classification pretraining on tiny synthetic images, conversion, two
  Mask R-CNN iterations on tiny synthetic shapes) goes through; a rerun resumes it at the first
  unfinished stage; a failure names its stage.
* A study.json written before these fields existed still loads, reruns and collects.
"""
import json
import os
import os.path as osp

import pytest
import torch

from regnet_backbone.demo.classification import make_synthetic_classification
from regnet_backbone.demo.synthetic import make_synthetic_coco
from regnet_backbone.design.presets import resolve_arch
from regnet_backbone.design.sampling import sample
from regnet_backbone import study
from regnet_backbone.runtime.config import load_config
from regnet_backbone.study import attempt, layout, recipe

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
STUDY_TOOL = osp.join(ROOT, 'tools', 'study.py')
FINETUNE_CONFIG = osp.join(ROOT, 'configs', 'mask_rcnn_regnetx_400mf_fpn.py')
LSJ_CONFIGS = [osp.join(ROOT, 'configs', f'mask_rcnn_{arch}_fpn_lsj-100e_scratch.py')
               for arch in ('regnetx_4.0gf', 'regnety_4.0gf')]
DET_DEMO = osp.join(ROOT, 'configs', 'demo', 'mask_rcnn_regnetx_400mf_fpn_synthetic.py')
CLS_DEMO = osp.join(ROOT, 'configs', 'demo', 'regnetx_200mf_synthetic_cls.py')
WINDOW = (200e6, 400e6)
SMALL = (100e6, 200e6)

# The demo detector made a fine-tuning recipe again (BN held in eval mode, stem and stage 1
# frozen), two iterations on a few 64x64 images, validated at the end.
TINY_DET = """
_base_ = {base!r}
max_iters = 2
model = dict(backbone=dict(frozen_stages=1, norm_eval=True,
                           norm_cfg=dict(_delete_=True, type='BN', requires_grad=True)))
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False)
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=max_iters)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
log_processor = dict(window_size=1)
"""
# The demo classifier for one epoch of 8 images at 32x32.
TINY_CLS = """
_base_ = {base!r}
data_root = {root!r}
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root))
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=1)]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=1))
"""


def _trial_cfg(work, trial, *parts):
    return load_config(osp.join(work, 'trials', trial['trial'], *parts, 'config.py'))


def _build_detector(cfg):
    from mmdet.registry import MODELS
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        return revert_sync_batchnorm(MODELS.build(cfg.model))


# --- refusal, --init scratch ---------------------------------------------------------------------
def test_finetuning_recipe_is_refused_with_one_line(tmp_path, run_tool, explain):
    work = tmp_path / 'refused'
    proc = run_tool(STUDY_TOOL, 'setup', FINETUNE_CONFIG, work, '--space', 'regnetx', '--n', 2,
                    '--flops', *WINDOW)
    assert proc.returncode != 0, explain(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), explain(proc)
    for text in ('--init scratch', '--pretrain CLS_CONFIG', 'frozen_stages=1',
                 'norm_eval=True with BN'):
        assert text in lines[0], lines[0]
    assert not (work / 'study.json').exists()


def test_init_scratch_unfreezes_everything_and_trains_the_norms(tmp_path):
    work = str(tmp_path / 'scratch')
    s = study.setup(FINETUNE_CONFIG, work, space='regnetx', n=2, flops=WINDOW, init='scratch')
    assert s['init'] == 'scratch'
    # mmdet's 1x schedule is 12 epochs, and --init scratch does not lengthen it
    assert s['schedule'] == {'max_epochs': 12, 'text': '12 epochs'}
    assert 'model.backbone.frozen_stages: 1 -> -1' in s['init_changes']
    assert 'model.backbone.norm_eval: True -> False' in s['init_changes']
    for trial in s['trials']:
        cfg = _trial_cfg(work, trial)
        backbone = cfg.model.backbone
        assert backbone.frozen_stages == -1 and backbone.norm_eval is False
        assert backbone.norm_cfg == dict(type='SyncBN', requires_grad=True)
        assert 'init_cfg' not in backbone and cfg.train_cfg.max_epochs == 12
        model = _build_detector(cfg)
        model.train()
        norms = [m for m in model.backbone.modules()
                 if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        assert norms and all(m.training for m in norms)
        params = list(model.backbone.named_parameters()) + list(model.neck.named_parameters())
        frozen = [name for name, p in params if not p.requires_grad]
        assert not frozen, frozen[:5]


@pytest.mark.parametrize('config', LSJ_CONFIGS, ids=osp.basename)
def test_lsj_scratch_recipe_trains_everything_as_written(tmp_path, config):
    """detectron2's new-baselines recipe: accepted without --init; 100 epochs are 25 epochs of
    COCO repeated 4 times; SGD lr 0.1, weight decay 4e-5, AMP, SyncBN in backbone and FPN."""
    s = study.setup(config, str(tmp_path / 'lsj'), space='regnetx', n=1, flops=(3.5e9, 4.5e9))
    assert s['init'] == 'recipe'
    assert s['schedule']['max_epochs'] * s['schedule']['dataset_repeats'] == 100
    cfg = load_config(config)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert (cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay) == (0.1, 4e-5)
    assert cfg.train_dataloader.batch_size * 32 == 64 == cfg.auto_scale_lr.base_batch_size
    assert cfg.model.backbone.norm_cfg.type == cfg.model.neck.norm_cfg.type == 'SyncBN'
    assert cfg.model.backbone.get('init_cfg') is None
    model = _build_detector(cfg)
    assert list(model.neck.in_channels) == list(model.backbone.out_channels)
    assert list(model.backbone.out_channels) == list(resolve_arch(cfg.arch).widths)


def test_what_counts_as_untrained_weights_and_what_scratch_changes():
    from mmengine.config import Config

    def cfg(**backbone):
        return Config(dict(model=dict(backbone=dict(type='RegNetBackbone', **backbone),
                                      neck=dict(type='FPN', norm_cfg=dict(type='BN')))))
    # RegNetBackbone's default norm_eval is True, and its default norm is BN
    assert recipe.untrained_weights(cfg()) == ['norm_eval=True with BN']
    assert recipe.untrained_weights(cfg(norm_eval=False)) == []
    # GroupNorm keeps no running statistics: norm_eval does not freeze it
    assert recipe.untrained_weights(cfg(norm_cfg=dict(type='GN', num_groups=8))) == []
    assert recipe.untrained_weights(cfg(
        frozen_stages=0, norm_eval=False, norm_cfg=dict(type='GN', num_groups=8,
                                                        requires_grad=False))) == [
        'frozen_stages=0', 'norm_cfg requires_grad=False']
    scratch = cfg(frozen_stages=2, norm_cfg=dict(type='GN', num_groups=8, requires_grad=False))
    recipe.train_everything(scratch)
    assert recipe.untrained_weights(scratch) == []
    assert scratch.model.backbone.norm_cfg == dict(type='GN', num_groups=8, requires_grad=True)
    assert scratch.model.neck.norm_cfg == dict(type='SyncBN', requires_grad=True)


# --- buildability --------------------------------------------------------------------------------
def _divides_every_width(arch, groups):
    spec = resolve_arch(arch)
    channels = [32] + list(spec.widths) + list(spec.bottleneck_widths)  # stem, blocks
    return all(c % groups == 0 for c in channels)


def test_archs_groupnorm_cannot_build_are_rejected_draws(tmp_path):
    work = str(tmp_path / 'gn32')
    s = study.setup(DET_DEMO, work, space='regnetx', n=2, flops=WINDOW, seed=0,
                    cfg_options={'model.backbone.norm_cfg.num_groups': 32})
    # what the sampler drew, in order, and which of those 32 groups divide (by hand)
    drawn = sample('regnetx', 40, seed=0, flops=WINDOW)
    fits = [d for d in drawn if _divides_every_width(d.arch, 32)]
    assert [t['arch'] for t in s['trials']] == [d.arch for d in fits[:2]]
    expected_rejected = drawn.index(fits[1]) + 1 - 2
    assert expected_rejected > 0  # the case this test is about
    assert s['rejected']['count'] == expected_rejected
    [(reason, count)] = s['rejected']['reasons'].items()
    assert count == expected_rejected
    assert 'GN(num_groups=32)' in reason and 'divisible' in reason
    on_disk = json.loads(open(osp.join(work, 'study.json')).read())
    assert on_disk['rejected'] == s['rejected']


def test_a_norm_no_arch_can_build_is_the_recipe_s_fault(tmp_path):
    # 7 groups divide no multiple of 8, the stem's 32 channels included
    with pytest.raises(study.StudyError, match='none of the first .* builds'):
        study.setup(DET_DEMO, str(tmp_path / 'gn7'), space='regnetx', n=2, flops=WINDOW,
                    cfg_options={'model.backbone.norm_cfg.num_groups': 7})
    assert not osp.exists(osp.join(tmp_path, 'gn7', 'study.json'))


# --- repeats -------------------------------------------------------------------------------------
def test_repeats_train_the_first_samples_again_with_the_next_seed(tmp_path):
    work = str(tmp_path / 'repeats')
    s = study.setup(DET_DEMO, work, space='regnetx', n=3, flops=WINDOW, repeats=2)
    base_seed = load_config(DET_DEMO).get('randomness', {}).get('seed')
    base_seed = base_seed if isinstance(base_seed, int) else 0
    by_name = {t['trial']: t for t in s['trials']}
    assert sorted(by_name) == ['trial_000', 'trial_000_r1', 'trial_001', 'trial_001_r1',
                               'trial_002']
    for name, t in by_name.items():
        repeat = 1 if name.endswith('_r1') else 0
        assert (t['repeat'], t['seed'], t['sample']) == (repeat, base_seed + repeat,
                                                          int(name[6:9]))
        assert _trial_cfg(work, t).randomness.seed == t['seed']
        assert t['arch'] == by_name[name[:9]]['arch']
    assert len({json.dumps(by_name[f'trial_00{i}']['arch']) for i in range(3)}) == 3
    with pytest.raises(study.StudyError, match='--repeats'):
        study.setup(DET_DEMO, str(tmp_path / 'too_many'), space='regnetx', n=2, repeats=3)


# --- two-stage trials ----------------------------------------------------------------------------
@pytest.fixture(scope='module')
def two_stage(tmp_path_factory):
    base = tmp_path_factory.mktemp('two_stage')
    det_data = make_synthetic_coco(str(base / 'det'), num_train=4, num_val=2, size=64, seed=0)
    cls_root = make_synthetic_classification(str(base / 'cls'), num_train=8, num_val=4,
                                             size=32, seed=0)
    det = base / 'tiny_det.py'
    det.write_text(TINY_DET.format(base=DET_DEMO))
    cls = base / 'tiny_cls.py'
    cls.write_text(TINY_CLS.format(base=CLS_DEMO, root=str(cls_root)))
    work = str(base / 'study')
    s = study.setup(str(det), work, space='regnetx', n=1, flops=SMALL, data_root=det_data.root,
                    pretrain=str(cls))
    events = list(study.run(work, jobs=1, threads=1, retries=0))
    return work, s, events


def test_two_stage_setup_keeps_the_finetuning_recipe(two_stage):
    work, s, _ = two_stage
    assert s['init'] == 'pretrain' and s['pretrain_metric'] == 'accuracy/top1'
    assert s['schedule']['pretrain'] == {'max_epochs': 1, 'text': '1 epoch'}
    [trial] = s['trials']
    det, cls = _trial_cfg(work, trial), _trial_cfg(work, trial, 'pretrain')
    assert det.model.backbone.frozen_stages == 1 and det.model.backbone.norm_eval is True
    folder = osp.join(work, 'trials', trial['trial'])
    assert det.model.backbone.init_cfg == dict(type='Pretrained',
                                               checkpoint=osp.join(folder, 'pretrained.pth'))
    assert cls.model.backbone.arch == det.model.backbone.arch == trial['arch']
    assert cls.model.head.in_channels == resolve_arch(trial['arch']).widths[-1]


def test_two_stage_trial_goes_through(two_stage):
    work, s, events = two_stage
    [trial] = s['trials']
    assert [e.kind for e in events] == ['start', 'done'], [(e.kind, e.error) for e in events]
    folder = osp.join(work, 'trials', trial['trial'])
    stages = layout.read_stages(work, trial['trial'])
    assert stages['pretrain']['status'] == stages['convert']['status'] == 'done'
    top1 = stages['pretrain']['top1']
    assert 0 <= top1 <= 100
    # the converter read the same accuracy from the classifier's checkpoint
    from regnet_backbone.checkpoints import read_checkpoint
    converted = read_checkpoint(osp.join(folder, 'pretrained.pth'))
    assert converted['meta']['classifier_accuracy']['top1'] == pytest.approx(top1)
    # the detector started from it: its frozen stem still holds the pretrained weights
    with open(osp.join(folder, 'work', 'last_checkpoint')) as f:
        detector = torch.load(f.read().strip(), map_location='cpu', weights_only=False)
    stem = detector['state_dict']['backbone.stem.conv.weight']
    assert torch.equal(stem, converted['state_dict']['stem.conv.weight'])
    status = layout.read_status(work, trial['trial'])
    assert status['status'] == 'done' and status['stage'] is None
    results = study.collect(work)
    [record] = results['trials']
    assert record['pretrain'] == {'top1': pytest.approx(top1), 'error': pytest.approx(100 - top1)}
    assert 'coco/bbox_mAP' in record['metrics_final'] and record['iterations'] == 2
    assert (record['sample'], record['repeat']) == (0, 0) and record['seed'] == trial['seed']


def _mtimes(folder, names):
    return {n: os.stat(osp.join(folder, n)).st_mtime_ns for n in names}


def test_rerun_resumes_a_two_stage_trial_at_its_first_unfinished_stage(two_stage):
    """The converted file and the fine-tuning lost: a rerun converts again from the recorded
    checkpoint and fine-tunes, without pretraining again."""
    import shutil
    work, s, _ = two_stage
    name = s['trials'][0]['trial']
    folder = osp.join(work, 'trials', name)
    stage1 = ['pretrain/attempt-1.out', 'pretrain/attempt-1.err', 'stages.json']
    before = _mtimes(folder, stage1)
    os.remove(osp.join(folder, 'status.json'))
    os.remove(osp.join(folder, 'pretrained.pth'))
    shutil.rmtree(osp.join(folder, 'work'))
    assert layout.pending_stage(work, name) == 'finetune'  # stages.json: 1 and 2 done
    events = list(study.run(work, jobs=1, threads=1, retries=0))
    assert [e.kind for e in events] == ['start', 'done'], [(e.kind, e.error) for e in events]
    after = _mtimes(folder, stage1)
    assert after['pretrain/attempt-1.out'] == before['pretrain/attempt-1.out']
    assert after['pretrain/attempt-1.err'] == before['pretrain/attempt-1.err']
    assert osp.isfile(osp.join(folder, 'pretrained.pth'))
    assert layout.read_status(work, name)['status'] == 'done'


def test_each_attempt_starts_at_the_first_unfinished_stage(two_stage, tmp_path, monkeypatch):
    """The order of the stages, with training and conversion replaced by recorders: what runs
    after a failure in each stage, and after a lost converted file."""
    import regnet_backbone.checkpoints as checkpoints
    work, s, _ = two_stage
    copy = str(tmp_path / 'order')
    s2 = study.setup(s['base_config'], copy, space='regnetx', n=1, flops=SMALL,
                     data_root=s['data_root'], pretrain=s['pretrain_config'])
    name = s2['trials'][0]['trial']
    folder = osp.join(copy, 'trials', name)
    calls, fail = [], set()

    def fake_train(_attempt, config, work_dir, metric):
        stage = 'pretrain' if osp.basename(osp.dirname(config)) == 'pretrain' else 'finetune'
        calls.append(stage)
        if stage == 'pretrain':
            os.makedirs(work_dir, exist_ok=True)
            with open(osp.join(work_dir, 'epoch_1.pth'), 'wb') as f:
                f.write(b'x')
            with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
                f.write(osp.join(work_dir, 'epoch_1.pth'))
        ok = stage not in fail
        return dict(ok=ok, returncode=0 if ok else 1, wall_time=1.0, resumed=False, rank=0,
                    error=None if ok else f'{stage} broke', metrics={metric: 40.0} if ok else {})

    class Report:
        nonfinite, num_tensors = [], 1

    def fake_convert(source, output, force=False):
        calls.append('convert')
        if 'convert' in fail:
            raise checkpoints.CheckpointError('convert broke')
        with open(output, 'wb') as f:
            f.write(b'converted')
        return Report()

    monkeypatch.setattr(attempt, '_train_stage', fake_train)
    monkeypatch.setattr(checkpoints, 'convert_file', fake_convert)

    def run_attempt():
        calls.clear()
        return attempt.train_attempt(attempt.Attempt(
            study=copy, trial=name, number=1, config=osp.join(folder, 'config.py'),
            work_dir=osp.join(folder, 'work'), train_tool='train.py', metric='coco/bbox_mAP',
            pretrain_config=osp.join(folder, 'pretrain', 'config.py'),
            pretrain_work_dir=osp.join(folder, 'pretrain', 'work'),
            pretrained=osp.join(folder, 'pretrained.pth'), pretrain_metric='accuracy/top1'))

    fail.update({'pretrain'})
    out = run_attempt()
    assert (calls, out['ok'], out['stage']) == (['pretrain'], False, 'pretrain')
    assert layout.pending_stage(copy, name) == 'pretrain'
    fail.clear(), fail.update({'convert'})
    out = run_attempt()
    assert (calls, out['stage'], out['pretrain']) == (['pretrain', 'convert'], 'convert',
                                                      {'top1': 40.0, 'error': 60.0})
    fail.clear(), fail.update({'finetune'})
    out = run_attempt()
    assert (calls, out['stage']) == (['convert', 'finetune'], 'finetune')
    fail.clear()
    out = run_attempt()
    assert (calls, out['ok'], out['stage']) == (['finetune'], True, None)
    os.remove(osp.join(folder, 'pretrained.pth'))
    run_attempt()
    assert calls == ['convert', 'finetune']


def test_two_stage_failure_names_its_stage(two_stage, tmp_path):
    """A pretraining checkpoint that is not one fails the trial in stage 'convert' (no
    training runs: stage 1 is recorded as done)."""
    work, s, _ = two_stage
    settings = s
    copy = str(tmp_path / 'broken')
    s2 = study.setup(settings['base_config'], copy, space='regnetx', n=1, flops=SMALL,
                     data_root=settings['data_root'], pretrain=settings['pretrain_config'])
    name = s2['trials'][0]['trial']
    folder = osp.join(copy, 'trials', name)
    garbage = osp.join(folder, 'pretrain', 'epoch_1.pth')
    with open(garbage, 'wb') as f:
        f.write(b'not a checkpoint')
    with open(osp.join(folder, 'stages.json'), 'w') as f:
        json.dump(dict(pretrain=dict(status='done', top1=50.0, checkpoint=garbage)), f)
    events = list(study.run(copy, jobs=1, threads=1, retries=0))
    assert [(e.kind, e.stage) for e in events] == [('start', None), ('failed', 'convert')]
    status = layout.read_status(copy, name)
    assert status['status'] == 'failed' and status['stage'] == 'convert'
    assert status['pretrain'] == {'top1': 50.0, 'error': 50.0}
    [record] = study.collect(copy)['trials']
    assert record['status'] == 'failed' and record['stage'] == 'convert'
    assert record['pretrain'] == {'top1': 50.0, 'error': 50.0}  # stage 1 is done
    assert not osp.exists(osp.join(folder, 'work'))  # fine-tuning never started


def test_pretrain_recipe_that_cannot_initialise_the_detector_is_refused(tmp_path, two_stage):
    work, s, _ = two_stage
    cls = str(tmp_path / 'cls_gn.py')
    with open(cls, 'w') as f:  # GroupNorm has no running statistics: the files cannot match
        f.write(f"_base_ = {s['pretrain_config']!r}\n"
                "model = dict(backbone=dict(norm_cfg=dict(type='GN', num_groups=8)))\n")
    with pytest.raises(study.StudyError, match='cannot initialise'):
        study.setup(s['base_config'], str(tmp_path / 'mismatch'), space='regnetx', n=1,
                    flops=SMALL, pretrain=cls)
    with pytest.raises(study.StudyError, match='exclude each other'):
        study.setup(s['base_config'], str(tmp_path / 'both'), space='regnetx', n=1,
                    flops=SMALL, pretrain=s['pretrain_config'], init='scratch')


# --- old study files -----------------------------------------------------------------------------
def test_a_study_json_without_the_new_fields_still_loads(tmp_path):
    work = str(tmp_path / 'old')
    s = study.setup(DET_DEMO, work, space='regnetx', n=2, flops=WINDOW)
    old = {k: v for k, v in s.items() if k not in (
        'init', 'pretrain_config', 'pretrain_cfg_options', 'repeats', 'schedule',
        'init_changes', 'rejected', 'pretrain_metric')}
    old['trials'] = [{k: v for k, v in t.items() if k not in ('sample', 'seed', 'repeat')}
                     for t in s['trials']]
    with open(osp.join(work, 'study.json'), 'w') as f:
        json.dump(old, f)
    assert study.setup(DET_DEMO, work, space='regnetx', n=2, flops=WINDOW) == old
    results = study.collect(work)
    assert [(t['sample'], t['seed'], t['repeat'], t['status']) for t in results['trials']] == [
        (0, None, 0, 'pending'), (1, None, 0, 'pending')]
    assert 'pretrain' not in results['trials'][0]
