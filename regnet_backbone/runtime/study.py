"""Design-space studies on a real mmdet / mmseg recipe: setup, run, collect.

A study is stages joined by files, so that each stage can be rerun or replaced alone::

    WORK_DIR/study.json                   settings and samples            (setup)
    WORK_DIR/trials/<name>/config.py      the base config, arch replaced  (setup)
    WORK_DIR/trials/<name>/work/          mmengine's logs and checkpoints (run)
    WORK_DIR/trials/<name>/attempt-K.out  .err: each training attempt's stdout / stderr (run)
    WORK_DIR/trials/<name>/status.json    written once a trial is done or failed (run)
    WORK_DIR/results.json                 one record per trial            (collect)

and, for two-stage trials (``setup --pretrain CLS_CONFIG``)::

    WORK_DIR/trials/<name>/pretrain/config.py   the classification recipe, arch replaced (setup)
    WORK_DIR/trials/<name>/pretrain/work/       its logs and checkpoints      (run, stage 1)
    WORK_DIR/trials/<name>/pretrained.pth       the converted backbone        (run, stage 2)
    WORK_DIR/trials/<name>/stages.json          which of stages 1 and 2 are done (run)

* :func:`setup` samples archs from a design space (:mod:`regnet_backbone.design.sampling`) and
  writes one trial config per sample: ``model.backbone.arch`` replaced, ``init_cfg`` removed (no
  pretrained weights exist for a sampled arch), every neck / head ``in_channels`` following
  the sampled widths (:func:`.channels.follow_backbone_channels`) and the training seed set
  (``randomness.seed``). How each trial gets its backbone weights (``init``: ``recipe``,
  ``scratch`` or ``pretrain``) is decided here and recorded, with the schedule, in
  ``study.json`` (:mod:`.trial_recipe`); a recipe that would train frozen random weights is
  refused. Each sampled backbone is built with the recipe's norm first; archs that cannot be
  built are counted as rejected draws (``rejected`` in ``study.json``) and more are drawn.
  ``repeats=K`` trains the first K samples once more with another seed (the seed-noise floor).
* :func:`run` trains each trial with the engine behind ``tools/train.py``, as a subprocess
  ``python tools/train.py CONFIG --work-dir DIR [--resume]``: a crash, an OOM or a divergence in
  one trial never stops the study, and the tail of its stderr becomes the trial's error. Attempts
  go to a ``concurrent.futures`` pool on this machine or to SLURM through ``submitit`` (whose
  local executor runs the same code path without SLURM). It yields :class:`Progress` events.
  A two-stage trial runs its stages in one attempt (classification pretraining, conversion with
  :func:`regnet_backbone.checkpoints.convert_file`, fine-tuning); each finished stage is
  recorded, so a later attempt continues at the first unfinished one, and a failure names its
  stage.
* :func:`collect` reads each trial's mmengine scalars into ``results.json``.

"Finished" means ``status.json`` says ``done``: it is written atomically, after ``train.py``
exited 0 and its validation metrics were read. A trial without ``status.json`` is pending; when
its work dir holds a checkpoint, the next attempt resumes from it (``--resume``).

Library code: nothing here prints or exits; problems raise :class:`StudyError`.
"""
import contextlib
import copy
import datetime
import json
import math
import os
import os.path as osp
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from ..atomic import replace_bytes
from . import trial_recipe
from .channels import BACKBONE_TYPE, follow_backbone_channels
from .engine import ToolError, codebase_of, load_config
from .logs import ERROR_TAIL_LINES, metric_values, read_scalars, tail

STUDY_FILE = 'study.json'
RESULTS_FILE = 'results.json'
STATUS_FILE = 'status.json'
TRIALS_DIR = 'trials'
TRIAL_CONFIG = 'config.py'
TRIAL_WORK = 'work'
LAST_CHECKPOINT = 'last_checkpoint'
PRETRAIN_DIR = 'pretrain'
PRETRAINED_FILE = 'pretrained.pth'
STAGES_FILE = 'stages.json'
#: The stages of a two-stage trial, as a failure names them (``status.json`` ``stage``).
STAGES = ('pretrain', 'convert', 'finetune')
FORMAT_VERSION = 1
#: Settings a study.json written before they existed is read with.
SETTING_DEFAULTS = dict(init='recipe', pretrain_config=None, pretrain_cfg_options={}, repeats=0)
#: Every sampled arch of a study is built with the recipe's norm; when none of this many
#: builds, the recipe (not the draw) is at fault.
BUILD_PROBE = 200
#: ``tools/train.py`` of the checkout this package lives in (absent from a wheel install).
DEFAULT_TRAIN_TOOL = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))),
                              'tools', 'train.py')
EXECUTORS = ('local', 'workers', 'slurm', 'submitit-local')
# Scalars mmengine logs beside the validation metrics.


class StudyError(ToolError):
    """A study cannot be set up, run, collected or analysed; the message is one line."""


# --- files -----------------------------------------------------------------------------------------
def _write_json(path: str, data) -> None:
    replace_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + '\n').encode())


def _read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise StudyError(f'{path} not found') from None
    except ValueError as e:
        raise StudyError(f'{path} is not valid JSON ({e})') from None


def load_study(work_dir: str) -> dict:
    """``WORK_DIR/study.json``: the settings (``space``, ``n``, ``seed``, ``windows``, ...) and
    ``trials`` (``trial``, ``arch``, ``flops``, ``params``, ``acts``)."""
    path = osp.join(work_dir, STUDY_FILE)
    if not osp.isfile(path):
        raise StudyError(f'{work_dir} is not a study: {STUDY_FILE} is missing (run '
                         '`tools/study.py setup BASE_CONFIG WORK_DIR ...` first)')
    return _read_json(path)


def trial_dir(work_dir: str, trial: str) -> str:
    return osp.join(work_dir, TRIALS_DIR, trial)


def read_status(work_dir: str, trial: str) -> Optional[dict]:
    """A trial's ``status.json`` (``status``: ``done`` or ``failed``, ``attempts``,
    ``wall_time`` in seconds, ``error``), or None while it is pending."""
    path = osp.join(trial_dir(work_dir, trial), STATUS_FILE)
    return _read_json(path) if osp.isfile(path) else None


def read_stages(work_dir: str, trial: str) -> dict:
    """A two-stage trial's ``stages.json``: ``{'pretrain': {'status': 'done', 'top1',
    'metric', 'checkpoint', 'wall_time'}, 'convert': {'status': 'done', 'file', 'source',
    'tensors'}}``, each key present once that stage is done; ``{}`` before."""
    path = osp.join(trial_dir(work_dir, trial), STAGES_FILE)
    return _read_json(path) if osp.isfile(path) else {}


def pending_stage(work_dir: str, trial: str) -> str:
    """The first unfinished stage of a two-stage trial: ``pretrain``, ``convert`` or
    ``finetune``."""
    stages = read_stages(work_dir, trial)
    for stage in STAGES[:2]:
        if (stages.get(stage) or {}).get('status') != 'done':
            return stage
    return STAGES[2]


# --- setup -----------------------------------------------------------------------------------------
def default_metric(cfg) -> str:
    """The validation metric a study ranks by, from the config's evaluator.

    ``coco/bbox_mAP`` (``coco/segm_mAP`` for a segm-only CocoMetric) for mmdet's CocoMetric,
    ``mIoU`` for mmseg's IoUMetric, ``accuracy/top1`` for mmpretrain's Accuracy.
    """
    evaluators = cfg.get('val_evaluator')
    evaluators = evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]
    for ev in evaluators:
        kind = (ev or {}).get('type', '')
        kind = kind.split('.')[-1] if isinstance(kind, str) else getattr(kind, '__name__', '')
        if kind == 'CocoMetric':
            metrics = ev.get('metric', 'bbox')
            metrics = [metrics] if isinstance(metrics, str) else list(metrics)
            return f'coco/{"bbox" if "bbox" in metrics else metrics[0]}_mAP'
        if kind == 'IoUMetric':
            return 'mIoU'
        if kind in ('Accuracy', 'SingleLabelMetric'):
            return 'accuracy/top1'
    raise StudyError('cannot tell the metric from the config\'s val_evaluator '
                     f'({[(e or {}).get("type") for e in evaluators]}); pass --metric KEY')


def _absolute_data_paths(cfg, base: str) -> None:
    """Make every relative dataset ``data_root`` and evaluator ``ann_file`` absolute (against
    ``base``), so that a trial config reads the same data from any working directory."""
    def fix(node):
        if isinstance(node, dict):
            for key in ('data_root', 'ann_file'):
                value = node.get(key)
                if isinstance(value, str) and value and '://' not in value and \
                        not osp.isabs(value) and (key == 'data_root' or 'data_root' not in node):
                    node[key] = osp.join(base, value)
            for value in node.values():
                fix(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                fix(value)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator',
                'test_evaluator'):
        if cfg.get(key) is not None:
            fix(cfg[key])
    datasets = [d for d in [cfg.get('train_dataloader', {}).get('dataset')] if d]
    if isinstance(cfg.get('data_root'), str) and datasets and datasets[0].get('data_root'):
        cfg.data_root = datasets[0]['data_root']  # the top-level variable agrees


def trial_config(base_cfg, arch: dict, *, seed: Optional[int] = None,
                 pretrained: Optional[str] = None):
    """A copy of ``base_cfg`` that trains ``arch``: ``model.backbone.arch`` replaced,
    ``init_cfg`` and ``load_from`` removed, neck / head ``in_channels`` derived.

    Args:
        seed: the training seed, written as ``randomness.seed`` (the base's other
            ``randomness`` keys kept); None keeps the base's.
        pretrained: a converted backbone checkpoint to start from instead (``init_cfg =
            dict(type='Pretrained', checkpoint=pretrained)``), as a two-stage trial's
            fine-tuning does.

    Returns:
        ``(cfg, changes)``: the new mmengine Config and the ``in_channels`` changes made.
    """
    cfg = copy.deepcopy(base_cfg)
    backbone = cfg.get('model', {}).get('backbone')
    if not backbone or backbone.get('type') != BACKBONE_TYPE:
        raise StudyError(f'the base config\'s model.backbone must be type={BACKBONE_TYPE!r}, got '
                         f'{(backbone or {}).get("type")!r}')
    if cfg.get('arch') is not None and cfg.get('arch') == backbone.get('arch'):
        cfg.arch = copy.deepcopy(arch)  # the base's top-level `arch = ...` variable: no stale name
    backbone['arch'] = copy.deepcopy(arch)
    backbone.pop('init_cfg', None)
    if pretrained:
        backbone['init_cfg'] = dict(type='Pretrained', checkpoint=pretrained)
    cfg.load_from = None
    cfg.resume = False
    if seed is not None:
        cfg.randomness = dict(cfg.get('randomness') or {}, seed=int(seed))
    try:
        changes = follow_backbone_channels(cfg)
    except ValueError as e:
        raise StudyError(f'cannot derive in_channels for arch {arch}: {e}') from None
    return cfg, changes


def _windows(flops, params, acts) -> Dict[str, Optional[List[float]]]:
    out = {}
    for name, window in (('flops', flops), ('params', params), ('acts', acts)):
        if window is None:
            out[name] = None
            continue
        lo, hi = (float(v) for v in window)
        if not 0 <= lo < hi:
            raise StudyError(f'--{name} window must be 0 <= LO < HI, got {lo:g} {hi:g}')
        out[name] = [lo, hi]
    return out


def _refusal(config: str, found: List[str]) -> StudyError:
    return StudyError(
        f'{osp.basename(config)} would train frozen random weights ({", ".join(found)} in '
        'model.backbone, and a sampled arch has no pretrained weights): pass --init scratch '
        '(unfreeze everything, trainable norms) or --pretrain CLS_CONFIG (pretrain each sampled '
        'backbone on classification first)')


def _pretrain_recipe(path: str, cfg_options: Optional[dict]):
    """The classification config of two-stage trials, loaded and checked."""
    cfg = load_config(path, cfg_options)
    if codebase_of(cfg) != 'mmpretrain':
        raise StudyError(f'--pretrain needs an mmpretrain classification config; '
                         f'{osp.basename(path)} is {codebase_of(cfg)}')
    backbone = cfg.get('model', {}).get('backbone')
    if not backbone or backbone.get('type') != BACKBONE_TYPE:
        raise StudyError(f'--pretrain {osp.basename(path)}: model.backbone must be '
                         f'type={BACKBONE_TYPE!r}, got {(backbone or {}).get("type")!r}')
    found = trial_recipe.untrained_weights(cfg)
    if found:
        raise StudyError(f'--pretrain {osp.basename(path)} would train frozen random weights '
                         f'({", ".join(found)} in model.backbone): unfreeze them in that config')
    _absolute_data_paths(cfg, os.getcwd())
    return cfg


def _buildable_samples(space: str, n: int, sample_kwargs: dict, backbones: Sequence[dict],
                       fit_check) -> Tuple[list, Dict[str, int]]:
    """The first ``n`` samples (in the sampler's order) whose backbone builds with every config
    dict of ``backbones`` (the recipe's norm), and the reasons of the others: ``{reason:
    count}``. The sampler is asked for more draws until ``n`` build.

    ``fit_check(modules)`` may raise :class:`StudyError` when the built backbones cannot work
    together (a two-stage trial's classification and detection backbones).
    """
    from ..design import sampling
    verdicts: List[Optional[str]] = []  # None: builds
    want, samples, checked_fit = n, [], False
    while True:
        try:
            samples = sampling.sample(space, want, **sample_kwargs)
        except ValueError as e:
            kept = sum(v is None for v in verdicts)
            if not verdicts:
                raise StudyError(f'sampling {space}: {e}') from None
            raise StudyError(f'sampling {space}: only {kept} of {n} samples build with the '
                             f'recipe ({len(verdicts) - kept} rejected: '
                             f'{_reasons_text(verdicts)}); {e}') from None
        for s in samples[len(verdicts):]:
            modules, reason = [], None
            for backbone in backbones:
                module, reason = trial_recipe.build_backbone(dict(backbone, arch=s.arch))
                if reason:
                    break
                modules.append(module)
            if reason is None and not checked_fit:
                fit_check(modules)
                checked_fit = True
            verdicts.append(reason)
            if sum(v is None for v in verdicts) == n:
                break
        kept = [s for s, v in zip(samples, verdicts) if v is None]
        reasons: Dict[str, int] = {}
        for v in verdicts:
            if v is not None:
                reasons[v] = reasons.get(v, 0) + 1
        if len(kept) == n:
            return kept, reasons
        if not kept and len(verdicts) >= BUILD_PROBE:
            raise StudyError(f'none of the first {len(verdicts)} sampled {space} archs builds '
                             f'with the recipe: {_reasons_text(verdicts)}')
        want = max(want + 1, 2 * len(verdicts)) if kept else len(verdicts) + BUILD_PROBE


def _reasons_text(verdicts) -> str:
    counts: Dict[str, int] = {}
    for v in verdicts:
        if v is not None:
            counts[v] = counts.get(v, 0) + 1
    return '; '.join(f'{count}x {reason}' for reason, count in
                     sorted(counts.items(), key=lambda kv: -kv[1]))


def _training_seed(cfg) -> int:
    """The first training seed of a study: the recipe's ``randomness.seed``, else 0."""
    seed = (cfg.get('randomness') or {}).get('seed')
    return seed if isinstance(seed, int) else 0


def setup(base_config: str, work_dir: str, *, space: str, n: int, seed: int = 0,
          flops: Optional[Tuple[float, float]] = None,
          params: Optional[Tuple[float, float]] = None,
          acts: Optional[Tuple[float, float]] = None,
          input_size: Tuple[int, int] = (224, 224), cfg_options: Optional[dict] = None,
          metric: Optional[str] = None, data_root: Optional[str] = None,
          max_draws: int = 1_000_000, init: Optional[str] = None,
          pretrain: Optional[str] = None, pretrain_cfg_options: Optional[dict] = None,
          repeats: int = 0) -> dict:
    """Sample ``n`` archs from ``space`` and write one trial per sample under ``work_dir``.

    Args:
        base_config: an mmdet / mmseg config whose ``model.backbone`` is a ``RegNetBackbone``.
        space: a design space of :data:`regnet_backbone.design.sampling.SPACES`.
        seed: the sampling seed (the training seeds are the recipe's ``randomness.seed``, or
            0, and that plus 1 for a repeat).
        flops, params, acts: complexity windows ``(lo, hi)`` in multiply-adds, parameters and
            activations at ``input_size`` (pycls's convention: 1000-class head, 224x224).
        cfg_options: ``--cfg-options`` merged into the base config first.
        metric: the validation metric to rank by (default: from the evaluator,
            :func:`default_metric`).
        data_root: point the datasets at this folder (``engine.use_data_root``).
        max_draws: the sampler gives up (:class:`StudyError`) after this many draws.
        init: None (the recipe as written: refused when it would freeze untrained weights,
            :func:`.trial_recipe.untrained_weights`) or ``'scratch'``
            (:func:`.trial_recipe.train_everything`).
        pretrain: an mmpretrain classification config: two-stage trials (pretrain the sampled
            backbone with it, convert, fine-tune ``base_config`` from the result with its own
            ``frozen_stages`` / ``norm_eval``). Excludes ``init``.
        pretrain_cfg_options: ``--cfg-options`` for the classification config.
        repeats: train the first ``repeats`` samples once more, with training seed + 1
            (trials ``trial_<i>_r1``), for the seed-noise floor; at most ``n``.

    Every trial entry of ``study.json`` has ``trial``, ``sample`` (index of its distinct
    sampled arch), ``seed`` (its training seed), ``repeat`` (0, or 1 for a rerun of the same
    sample), ``arch``, ``flops``, ``params``, ``acts`` and ``in_channels`` (the changes made).
    The settings add ``init``, ``schedule`` (:func:`.trial_recipe.schedule_of`; for two-stage
    trials with the classification schedule under ``pretrain``), ``init_changes`` and
    ``rejected`` (``count`` and ``reasons``: ``{reason: count}`` of sampled archs whose
    backbone did not build with the recipe).

    Returns:
        the content of ``study.json``. Running ``setup`` again with the same settings leaves
        the study untouched (so a scripted study can be rerun); other settings raise
        :class:`StudyError`.
    """
    from ..design import sampling
    from .engine import use_data_root
    if space not in sampling.SPACES:
        raise StudyError(f'unknown design space {space!r}; choose from '
                         f'{", ".join(sampling.SPACES)}')
    if n < 1:
        raise StudyError(f'--n must be >= 1, got {n}')
    if init not in (None, 'scratch'):
        raise StudyError(f'--init must be scratch, got {init!r}')
    if init and pretrain:
        raise StudyError('--init scratch and --pretrain exclude each other: a trial starts '
                         'either from random weights or from its pretrained backbone')
    if not 0 <= repeats <= n:
        raise StudyError(f'--repeats must be in [0, --n], got {repeats} with --n {n}')
    base_config = osp.abspath(base_config)
    settings = dict(space=space, n=int(n), seed=int(seed), windows=_windows(flops, params, acts),
                    input_size=[int(v) for v in input_size], base_config=base_config,
                    cfg_options=cfg_options or {}, data_root=osp.abspath(data_root)
                    if data_root else None,
                    init='pretrain' if pretrain else (init or 'recipe'),
                    pretrain_config=osp.abspath(pretrain) if pretrain else None,
                    pretrain_cfg_options=pretrain_cfg_options or {}, repeats=int(repeats))
    existing = osp.join(work_dir, STUDY_FILE)
    if osp.isfile(existing):
        study = _read_json(existing)
        old = {k: study.get(k, SETTING_DEFAULTS.get(k)) for k in settings}
        if old != json.loads(json.dumps(settings)) or (metric and metric != study['metric']):
            changed = sorted(k for k in settings if old.get(k) != json.loads(
                json.dumps(settings[k])))
            raise StudyError(f'{work_dir} already holds a study with other settings '
                             f'({", ".join(changed) or "metric"} differ); use another WORK_DIR')
        return study

    cfg = load_config(base_config, cfg_options)
    codebase = codebase_of(cfg)
    if data_root:
        use_data_root(cfg, osp.abspath(data_root))
    _absolute_data_paths(cfg, os.getcwd())
    metric = metric or default_metric(cfg)
    backbone = cfg.get('model', {}).get('backbone')
    if not backbone or backbone.get('type') != BACKBONE_TYPE:
        raise StudyError(f'the base config\'s model.backbone must be type={BACKBONE_TYPE!r}, got '
                         f'{(backbone or {}).get("type")!r}')
    init_changes: List[str] = []
    if init == 'scratch':
        init_changes = trial_recipe.train_everything(cfg)
    elif not pretrain:
        found = trial_recipe.untrained_weights(cfg)
        if found:
            raise _refusal(base_config, found)
    schedule = trial_recipe.schedule_of(cfg)
    cls_cfg, backbones = None, [cfg.model.backbone]
    if pretrain:
        cls_cfg = _pretrain_recipe(osp.abspath(pretrain), pretrain_cfg_options)
        backbones.append(cls_cfg.model.backbone)
        schedule['pretrain'] = trial_recipe.schedule_of(cls_cfg)

    def fit_check(modules):
        if len(modules) < 2:
            return
        why = trial_recipe.shape_mismatch(trial_recipe.shapes(modules[1]),
                                          trial_recipe.shapes(modules[0]))
        if why:
            raise StudyError(f'the backbone pretrained by --pretrain {osp.basename(pretrain)} '
                             f'cannot initialise the one of {osp.basename(base_config)} '
                             f'(norm {trial_recipe.describe_norm(backbones[1])} vs '
                             f'{trial_recipe.describe_norm(backbones[0])}; {why}): make their '
                             'model.backbone settings other than arch agree')

    samples, reasons = _buildable_samples(
        space, n, dict(seed=seed, flops=flops, params=params, acts=acts,
                       input_size=tuple(input_size), max_draws=max_draws), backbones, fit_check)

    trials = []
    width = max(3, len(str(len(samples) - 1)))
    first_seed = _training_seed(cfg)
    runs = [(i, 0) for i in range(len(samples))] + [(i, 1) for i in range(repeats)]
    for index, repeat in runs:
        s = samples[index]
        name = f'trial_{index:0{width}d}' + (f'_r{repeat}' if repeat else '')
        folder = trial_dir(work_dir, name)
        trial_seed = first_seed + repeat
        pretrained = osp.join(osp.abspath(folder), PRETRAINED_FILE) if pretrain else None
        cfg_trial, changes = trial_config(cfg, s.arch, seed=trial_seed, pretrained=pretrained)
        os.makedirs(folder, exist_ok=True)
        replace_bytes(osp.join(folder, TRIAL_CONFIG), cfg_trial.pretty_text.encode())
        entry = dict(trial=name, sample=index, seed=trial_seed, repeat=repeat, arch=s.arch,
                     flops=int(s.flops), params=int(s.params), acts=int(s.acts),
                     in_channels=changes)
        if cls_cfg is not None:
            cls_trial, cls_changes = trial_config(cls_cfg, s.arch, seed=trial_seed)
            os.makedirs(osp.join(folder, PRETRAIN_DIR), exist_ok=True)
            replace_bytes(osp.join(folder, PRETRAIN_DIR, TRIAL_CONFIG),
                          cls_trial.pretty_text.encode())
            entry['pretrain_in_channels'] = cls_changes
        trials.append(entry)
    study = dict(version=FORMAT_VERSION, name=osp.basename(osp.abspath(work_dir)), **settings,
                 metric=metric, codebase=codebase,
                 pretrain_metric=default_metric(cls_cfg) if cls_cfg is not None else None,
                 schedule=schedule, init_changes=init_changes,
                 rejected=dict(count=sum(reasons.values()), reasons=reasons),
                 created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                 trials=trials)
    _write_json(existing, study)  # last: a study.json means every trial config is written
    return study


# --- run -------------------------------------------------------------------------------------------
@dataclass
class SlurmOptions:
    """What each trial asks SLURM for (through submitit). ``gpus_per_trial`` > 1 runs
    ``tools/train.py --launcher slurm`` in that many tasks (one per GPU) under srun."""
    partition: Optional[str] = None
    gpus_per_trial: int = 1
    cpus_per_task: int = 8
    time_min: int = 240
    mem_gb: Optional[int] = None
    constraint: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    extra: Dict[str, object] = field(default_factory=dict)


@dataclass
class Attempt:
    """One training attempt of one trial: what a pool thread or a SLURM job runs."""
    study: str
    trial: str
    number: int
    config: str
    work_dir: str
    train_tool: str
    python: str
    launcher: str = 'none'
    threads: Optional[int] = None
    cwd: Optional[str] = None
    metric: Optional[str] = None
    # Two-stage trials: the classification config and work dir (stage 1), the converted
    # backbone it becomes (stage 2, what ``config`` fine-tunes from) and the metric of stage 1.
    pretrain_config: Optional[str] = None
    pretrain_work_dir: Optional[str] = None
    pretrained: Optional[str] = None
    pretrain_metric: Optional[str] = None


@dataclass
class Progress:
    """A change in a :func:`run`: ``kind`` is ``start``, ``done``, ``failed`` (for good),
    ``retry`` (an attempt failed; another follows) or ``skip`` (finished earlier).

    ``done``, ``failed``, ``running`` and ``pending`` count the trials of every study in the run
    after the change; ``eta_s`` is the estimated time left in seconds (None until a trial
    finished); ``error`` the last lines of a failed attempt's stderr; ``metric`` the trial's
    final value of the study's metric, when known; ``stage`` the stage of a two-stage trial
    that failed (``pretrain``, ``convert`` or ``finetune``).
    """
    kind: str
    study: str
    trial: str
    done: int
    failed: int
    running: int
    pending: int
    eta_s: Optional[float] = None
    wall_time: Optional[float] = None
    attempt: int = 0
    error: Optional[str] = None
    metric: Optional[Tuple[str, float]] = None
    stage: Optional[str] = None




def _has_checkpoint(work_dir: str) -> bool:
    return _last_checkpoint(work_dir) is not None


def _last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint mmengine's ``last_checkpoint`` pointer names, when that file exists."""
    pointer = osp.join(work_dir, LAST_CHECKPOINT)
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        path = f.read().strip()
    return path if osp.isfile(path) else None


def _job_rank() -> int:
    with contextlib.suppress(ImportError, RuntimeError, KeyError):
        import submitit
        return submitit.JobEnvironment().global_rank
    return 0


def train_attempt(attempt: Attempt) -> dict:
    """Run one training attempt of one trial (resuming when its work dir holds a checkpoint)
    and report how it went. Never raises for a training failure.

    A two-stage trial (``attempt.pretrain_config`` set) runs its unfinished stages in order:
    see :func:`_two_stage_attempt`.

    Returns:
        ``dict(ok, returncode, wall_time, error, resumed, metrics, rank)``; ``error`` is the
        tail of the attempt's stderr (or why a clean exit still counts as a failure: no
        validation metric, a non-finite loss). Two-stage trials add ``stage`` (the stage that
        failed, or None) and ``pretrain`` (``{'top1', 'error'}`` in percent, once known).
    """
    if attempt.pretrain_config:
        return _two_stage_attempt(attempt)
    return _train_stage(attempt, attempt.config, attempt.work_dir, attempt.metric)


def _train_stage(attempt: Attempt, config: str, work_dir: str, metric: Optional[str]) -> dict:
    """``tools/train.py CONFIG --work-dir WORK_DIR [--resume]`` once, its stdout / stderr in
    ``attempt-K.out`` / ``.err`` beside ``config``; what :func:`train_attempt` returns."""
    folder = osp.dirname(config)
    rank = _job_rank()  # > 0: another task of a multi-GPU SLURM job
    stem = f'attempt-{attempt.number}' + (f'.rank{rank}' if rank else '')
    out, err = osp.join(folder, stem + '.out'), osp.join(folder, stem + '.err')
    resumed = _has_checkpoint(work_dir)
    cmd = [attempt.python, attempt.train_tool, config, '--work-dir', work_dir,
           '--launcher', attempt.launcher] + (['--resume'] if resumed else [])
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env.setdefault('PYTHONWARNINGS', 'ignore')
    if attempt.threads:
        env.update(OMP_NUM_THREADS=str(attempt.threads), MKL_NUM_THREADS=str(attempt.threads))
    if attempt.launcher == 'slurm' and 'MASTER_PORT' not in env:
        # Jobs sharing a node must not share mmengine's default port 29500.
        env['MASTER_PORT'] = str(20000 + int(env.get('SLURM_JOB_ID', '0')) % 20000)
    start = time.time()
    try:
        with open(out, 'w') as fo, open(err, 'w') as fe:
            returncode = subprocess.run(cmd, stdout=fo, stderr=fe, env=env,
                                        cwd=attempt.cwd).returncode
    except OSError as e:
        returncode, error = -1, f'cannot start {attempt.train_tool}: {e}'
    else:
        error = None if returncode == 0 else (tail(err) or f'train.py exited {returncode}')
    wall = time.time() - start
    metrics = {}
    if returncode == 0:
        train, val = read_scalars(work_dir)
        losses = [r['loss'] for r in train if isinstance(r.get('loss'), (int, float))]
        if losses and not math.isfinite(losses[-1]):
            error = f'diverged: the training loss is {losses[-1]} at the end'
        elif not val:
            error = 'training ended without a validation (no metric was logged)'
        else:
            metrics = metric_values(val[-1])
            if metric and metric not in metrics:
                error = (f'the validation logged no {metric!r} (it logged '
                         f'{", ".join(sorted(metrics)) or "nothing"})')
    return dict(ok=error is None, returncode=returncode, wall_time=wall, error=error,
                resumed=resumed, metrics=metrics, rank=rank)


def _pretrain_result(top1: Optional[float]) -> Optional[dict]:
    """``{'top1', 'error'}`` (percent) of a classification top-1 accuracy in percent."""
    return None if top1 is None else dict(top1=float(top1), error=100.0 - float(top1))


def _two_stage_attempt(attempt: Attempt) -> dict:
    """The unfinished stages of a two-stage trial, in order, in one attempt:

    1. ``pretrain``: ``tools/train.py`` on the classification config (resumed from its last
       checkpoint when there is one); done once it validated.
    2. ``convert``: its last checkpoint -> ``attempt.pretrained`` with
       :func:`regnet_backbone.checkpoints.convert_file` (which keeps the classifier's top-1 in
       the file's meta).
    3. ``finetune``: ``tools/train.py`` on the trial config, whose backbone ``init_cfg`` loads
       that file (resumed when its work dir holds a checkpoint).

    Stages 1 and 2 are recorded in ``stages.json`` when done, so the next attempt (a retry, a
    rerun of ``run``) starts at the first unfinished stage. Returns what :func:`train_attempt`
    documents; ``wall_time`` sums the stages run by this attempt.
    """
    folder = osp.dirname(attempt.config)
    stages_path = osp.join(folder, STAGES_FILE)
    stages = _read_json(stages_path) if osp.isfile(stages_path) else {}
    wall = 0.0

    def failed(stage, outcome):
        return dict(outcome, ok=False, wall_time=wall, stage=stage,
                    pretrain=_pretrain_result((stages.get('pretrain') or {}).get('top1')))

    if (stages.get('pretrain') or {}).get('status') != 'done':
        outcome = _train_stage(attempt, attempt.pretrain_config, attempt.pretrain_work_dir,
                               attempt.pretrain_metric)
        wall += outcome['wall_time'] or 0.0
        checkpoint = _last_checkpoint(attempt.pretrain_work_dir)
        if outcome['ok'] and checkpoint is None:
            outcome = dict(outcome, ok=False, error='pretraining wrote no checkpoint '
                           f'({LAST_CHECKPOINT} missing in {attempt.pretrain_work_dir})')
        if not outcome['ok']:
            return failed('pretrain', outcome)
        stages['pretrain'] = dict(status='done', top1=outcome['metrics'].get(
            attempt.pretrain_metric), metric=attempt.pretrain_metric, checkpoint=checkpoint,
            wall_time=round(outcome['wall_time'], 1))
        _write_json(stages_path, stages)
    if (stages.get('convert') or {}).get('status') != 'done' or \
            not osp.isfile(attempt.pretrained):
        start = time.time()
        error = None
        try:
            from ..checkpoints import convert_file
            report = convert_file(stages['pretrain']['checkpoint'], attempt.pretrained,
                                  force=True)
        except Exception as e:  # the converter's refusal is this trial's failure, not the study's
            error = f'{type(e).__name__}: {e}'
        else:
            if report.nonfinite:
                error = (f'the pretrained backbone holds NaN or Inf in {len(report.nonfinite)} '
                         f'tensors (e.g. {report.nonfinite[0]})')
        wall += time.time() - start
        if error:
            return failed('convert', dict(returncode=None, error=error, resumed=False,
                                          metrics={}, rank=_job_rank()))
        stages['convert'] = dict(status='done', file=attempt.pretrained,
                                 source=stages['pretrain']['checkpoint'],
                                 tensors=report.num_tensors)
        _write_json(stages_path, stages)
    outcome = _train_stage(attempt, attempt.config, attempt.work_dir, attempt.metric)
    wall += outcome['wall_time'] or 0.0
    return dict(outcome, wall_time=wall, stage=None if outcome['ok'] else 'finetune',
                pretrain=_pretrain_result(stages['pretrain'].get('top1')))


class _LocalBackend:
    """Attempts in a pool of threads, each waiting on its own ``tools/train.py`` process."""

    def __init__(self, jobs: int):
        self.pool = ThreadPoolExecutor(max_workers=jobs)

    def submit(self, attempts: Sequence[Attempt]) -> list:
        return [self.pool.submit(train_attempt, a) for a in attempts]

    @staticmethod
    def running(handle) -> bool:
        return handle.running()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class _SubmititBackend:
    """Attempts as a SLURM job array through submitit (``cluster='local'``: the same code path
    on this machine, each job a subprocess). SLURM runs at most ``jobs`` at once."""

    def __init__(self, folder: str, jobs: int, cluster: str, slurm: SlurmOptions,
                 threads: Optional[int]):
        try:
            import submitit
        except ImportError:
            raise StudyError('--executor slurm needs submitit (pip install submitit)') from None
        try:
            self.executor = submitit.AutoExecutor(folder=osp.join(folder, '%j'), cluster=cluster)
        except RuntimeError as e:  # no srun on this machine
            raise StudyError(f'--executor {cluster}: {e}') from None
        tasks = max(1, slurm.gpus_per_trial)
        params = dict(timeout_min=slurm.time_min, nodes=1, tasks_per_node=tasks,
                      cpus_per_task=threads or slurm.cpus_per_task, name='regnet-study')
        if cluster == 'slurm':
            params.update(gpus_per_node=slurm.gpus_per_trial, slurm_array_parallelism=jobs)
            for key in ('partition', 'constraint', 'account', 'qos'):
                if getattr(slurm, key):
                    params[f'slurm_{key}'] = getattr(slurm, key)
            if slurm.mem_gb:
                params['mem_gb'] = slurm.mem_gb
            params.update({f'slurm_{k}' if not k.startswith('slurm_') else k: v
                           for k, v in slurm.extra.items()})
        self.executor.update_parameters(**params)

    def submit(self, attempts: Sequence[Attempt]) -> list:
        with self.executor.batch():
            jobs = [self.executor.submit(train_attempt, a) for a in attempts]
        return jobs

    @staticmethod
    def running(handle) -> bool:
        with contextlib.suppress(Exception):
            return handle.state == 'RUNNING'
        return False

    def close(self) -> None:
        pass


def _outcome(handle) -> dict:
    try:
        return handle.result()
    except Exception as e:  # a SLURM job that died (timeout, node failure) or a bug
        text = str(e).strip() or type(e).__name__
        return dict(ok=False, returncode=None, wall_time=None, metrics={}, resumed=False,
                    error='\n'.join(text.splitlines()[-ERROR_TAIL_LINES:]))


def _lock(work_dir: str):
    """Hold ``WORK_DIR/.run.lock`` for the whole run: two runs of one study would train its
    trials twice."""
    import fcntl
    f = open(osp.join(work_dir, '.run.lock'), 'w')
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise StudyError(f'another `tools/study.py run` is running on {work_dir}') from None
    return f


def run(work_dirs, *, jobs: int = 1, retries: int = 0, executor: str = 'local',
        retry_failed: bool = False, threads: Optional[int] = None,
        slurm: Optional[SlurmOptions] = None, train_tool: str = DEFAULT_TRAIN_TOOL,
        python: str = sys.executable, poll_s: Optional[float] = None) -> Iterator[Progress]:
    """Train every unfinished trial of one or more studies; yields :class:`Progress` events.

    Args:
        work_dirs: a study folder, or several (their trials share the ``jobs`` slots).
        jobs: trials trained at once (``local``: processes on this machine; ``slurm``: the job
            array's parallelism).
        retries: extra attempts for a trial whose attempt failed; each resumes from the trial's
            last checkpoint when there is one.
        executor: ``local`` (a pool of ``tools/train.py`` subprocesses), ``workers``
            (``jobs`` long-lived worker processes that run ``tools/train.py`` in-process, trial
            after trial: :mod:`.study_workers`), ``slurm`` (a job array through submitit, one
            job per attempt) or ``submitit-local`` (the slurm code path on this machine).
        retry_failed: also train trials that failed in an earlier run (they are skipped
            otherwise).
        threads: ``OMP_NUM_THREADS`` per trial (default for ``local``: the CPU count divided
            by ``jobs``).
        slurm: what each SLURM job asks for.
        train_tool: the ``tools/train.py`` to run.

    Finished trials are skipped; a trial that failed all its ``1 + retries`` attempts is
    recorded as failed (``status.json``) and the study goes on.
    """
    if isinstance(work_dirs, (str, os.PathLike)):
        work_dirs = [work_dirs]
    work_dirs = [osp.abspath(w) for w in work_dirs]
    if executor not in EXECUTORS:
        raise StudyError(f'--executor must be one of {", ".join(EXECUTORS)}, got {executor!r}')
    if jobs < 1 or retries < 0:
        raise StudyError(f'--jobs must be >= 1 and --retries >= 0, got {jobs} and {retries}')
    if not osp.isfile(train_tool):
        raise StudyError(f'{train_tool} not found: run studies from a checkout of this project')
    slurm = slurm or SlurmOptions()
    if executor in ('local', 'workers') and threads is None:
        threads = max(1, (os.cpu_count() or 1) // jobs)

    studies = [(w, load_study(w)) for w in work_dirs]
    locks = [_lock(w) for w in work_dirs]
    todo, counts = [], dict(done=0, failed=0)
    skipped = []
    for w, study in studies:
        for t in study['trials']:
            status = read_status(w, t['trial'])
            if status and (status['status'] == 'done' or not retry_failed):
                counts[status['status']] += 1
                skipped.append((study['name'], t['trial'], status))
                continue
            folder = trial_dir(w, t['trial'])
            two_stage = {}
            if study.get('init') == 'pretrain':
                two_stage = dict(
                    pretrain_config=osp.join(folder, PRETRAIN_DIR, TRIAL_CONFIG),
                    pretrain_work_dir=osp.join(folder, PRETRAIN_DIR, TRIAL_WORK),
                    pretrained=osp.join(folder, PRETRAINED_FILE),
                    pretrain_metric=study.get('pretrain_metric') or 'accuracy/top1')
            todo.append(Attempt(study=w, trial=t['trial'], number=0,
                                config=osp.join(folder, TRIAL_CONFIG),
                                work_dir=osp.join(folder, TRIAL_WORK),
                                train_tool=osp.abspath(train_tool), python=python,
                                launcher='slurm' if executor == 'slurm' and
                                slurm.gpus_per_trial > 1 else 'none',
                                threads=threads, cwd=os.getcwd(), metric=study['metric'],
                                **two_stage))
    names = {w: study['name'] for w, study in studies}
    started: Dict[str, float] = {}
    durations: List[float] = []
    wall = {a.trial + a.study: 0.0 for a in todo}
    tried = {a.trial + a.study: 0 for a in todo}

    backend = None
    poll = poll_s or {'local': 0.5, 'workers': 0.5, 'slurm': 30.0}.get(executor, 1.0)

    def event(kind, attempt, **kw) -> Progress:
        running = sum(1 for h in active if backend.running(h))
        pending = len(active) - running
        eta = None
        if durations:
            mean = sum(durations) / len(durations)
            now = time.time()
            left = pending * mean + sum(max(mean - (now - started[k]), 0.0)
                                        for k in started)
            eta = left / min(jobs, max(1, running + pending))
        return Progress(kind, names[attempt.study], attempt.trial, counts['done'],
                        counts['failed'], running, pending, eta, attempt=attempt.number, **kw)

    active: Dict[object, Attempt] = {}
    try:
        if executor == 'local':
            backend = _LocalBackend(jobs)
        elif executor == 'workers':
            from .study_workers import WorkerBackend
            backend = WorkerBackend(jobs, fallback=train_attempt)
        else:
            backend = _SubmititBackend(osp.join(work_dirs[0], 'submitit'), jobs,
                                       'slurm' if executor == 'slurm' else 'local', slurm,
                                       threads)
        for study_name, trial, status in skipped:
            yield Progress('skip', study_name, trial, counts['done'], counts['failed'], 0,
                           len(todo), None, status.get('wall_time'), status.get('attempts', 0),
                           status.get('error'))
        for attempt in todo:
            attempt.number = 1
        if todo:
            active.update(zip(backend.submit(todo), todo))
        while active:
            for handle, attempt in list(active.items()):
                key = attempt.trial + attempt.study
                if key not in started and (backend.running(handle) or handle.done()):
                    started[key] = time.time()
                    yield event('start', attempt)
                if not handle.done():
                    continue
                del active[handle]
                started.pop(key, None)
                outcome = _outcome(handle)
                tried[key] += 1
                if outcome.get('wall_time'):
                    wall[key] += outcome['wall_time']
                metric = outcome.get('metrics', {}).get(attempt.metric)
                metric = (attempt.metric, metric) if metric is not None else None
                if outcome['ok'] or attempt.number > retries:
                    status = dict(status='done' if outcome['ok'] else 'failed',
                                  attempts=tried[key], wall_time=round(wall[key], 1),
                                  error=outcome['error'], returncode=outcome.get('returncode'),
                                  resumed=bool(outcome.get('resumed')),
                                  finished=datetime.datetime.now(datetime.timezone.utc)
                                  .isoformat(timespec='seconds'))
                    if attempt.pretrain_config:
                        stage = outcome.get('stage')
                        if not outcome['ok'] and stage is None:  # the job died: where?
                            stage = pending_stage(attempt.study, attempt.trial)
                        status.update(stage=stage, pretrain=outcome.get('pretrain'))
                    _write_json(osp.join(trial_dir(attempt.study, attempt.trial), STATUS_FILE),
                                status)
                    counts[status['status']] += 1
                    if outcome['ok']:
                        durations.append(wall[key])
                    yield event(status['status'], attempt, wall_time=wall[key],
                                error=outcome['error'], metric=metric,
                                stage=outcome.get('stage'))
                else:
                    yield event('retry', attempt, wall_time=outcome.get('wall_time'),
                                error=outcome['error'], stage=outcome.get('stage'))
                    retry = Attempt(**{**asdict(attempt), 'number': attempt.number + 1})
                    active.update(zip(backend.submit([retry]), [retry]))
            if active:
                time.sleep(poll)
    finally:
        if backend is not None:
            backend.close()
        for f in locks:
            f.close()


# --- collect ---------------------------------------------------------------------------------------


def collect(work_dir: str) -> dict:
    """Write ``WORK_DIR/results.json`` from the trials' logs and return it.

    Format: ``{"study": {settings: name, space, n, seed, windows, input_size, base_config,
    metric, codebase, init, schedule, repeats, rejected, ...}, "trials": [{"trial", "sample",
    "seed", "repeat", "arch", "flops", "params", "acts", "status" ("done" | "failed" |
    "pending"), "metrics_final" ({key: value} of the last validation), "metrics_best" ({key:
    max over validations}), "error" (str or null), "wall_time" (seconds of training over all
    attempts, or null), "attempts", "iterations"}]}``. Metric values are what the evaluator
    logs (mmdet's mAP in [0, 1], mmseg's mIoU in percent). Two-stage trials add ``"pretrain":
    {"top1", "error"}`` (the classification top-1 accuracy of the last validation of the
    finished pretraining, and 100 minus it, in percent; null until stage 1 is done) and
    ``"stage"`` (where a failed trial failed). A study.json written before ``sample`` /
    ``seed`` / ``repeat`` existed is read with ``sample`` = the trial's position, ``seed`` null
    and ``repeat`` 0.
    """
    work_dir = osp.abspath(work_dir)
    study = load_study(work_dir)
    two_stage = study.get('init') == 'pretrain'
    records = []
    for position, t in enumerate(study['trials']):
        status = read_status(work_dir, t['trial']) or {}
        folder = trial_dir(work_dir, t['trial'])
        train, val = read_scalars(osp.join(folder, TRIAL_WORK))
        final = metric_values(val[-1]) if val else {}
        best: Dict[str, float] = {}
        for record in val:
            for key, value in metric_values(record).items():
                if math.isfinite(value) and (key not in best or value > best[key]):
                    best[key] = value
        record = dict(trial=t['trial'], sample=t.get('sample', position), seed=t.get('seed'),
                      repeat=t.get('repeat', 0), arch=t['arch'], flops=t['flops'],
                      params=t['params'], acts=t['acts'],
                      status=status.get('status', 'pending'), metrics_final=final,
                      metrics_best=best, error=status.get('error'),
                      wall_time=status.get('wall_time'),
                      attempts=status.get('attempts', 0),
                      iterations=train[-1]['step'] if train else 0)
        if two_stage:
            finished = read_stages(work_dir, t['trial']).get('pretrain') or {}
            top1 = finished.get('top1') if finished.get('status') == 'done' else None
            record.update(pretrain=_pretrain_result(top1), stage=status.get('stage'))
        records.append(record)
    settings = {k: v for k, v in study.items() if k != 'trials'}
    results = dict(study=settings, trials=records)
    _write_json(osp.join(work_dir, RESULTS_FILE), results)
    return results
