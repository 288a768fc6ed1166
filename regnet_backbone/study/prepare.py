"""The setup stage: sample archs from a design space and write one trial per sample.

:func:`setup` samples archs (:mod:`regnet_backbone.design.sampling`) and writes each trial's
config (:func:`.recipe.trial_config`) under ``WORK_DIR/trials/`` and, last, ``study.json``
(:mod:`.layout`). How each trial gets its backbone weights (``init``: ``recipe``, ``scratch``
or ``pretrain``) is decided here and recorded, with the schedule, in ``study.json``
(:mod:`.recipe`); a recipe that would train frozen random weights is refused. Each sampled
backbone is built with the recipe's norm first; archs that cannot be built are counted as
rejected draws (``rejected`` in ``study.json``) and more are drawn. ``repeats=K`` trains the
first K samples once more with another seed (the seed-noise floor).
"""
import datetime
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from ..atomic import replace_bytes
from ..checkpoints.state_dict import compare, shapes
from ..runtime.config import codebase_of, load_config
from ..runtime.datasets import use_data_root
from . import recipe
from .layout import (FORMAT_VERSION, PRETRAIN_DIR, PRETRAINED_FILE, SETTING_DEFAULTS, STUDY_FILE,
                     TRIAL_CONFIG, StudyError, read_json, trial_dir, write_json)
from .recipe import absolute_data_paths, backbone_of, default_metric, trial_config

#: Every sampled arch of a study is built with the recipe's norm; when none of this many
#: builds, the recipe (not the draw) is at fault.
BUILD_PROBE = 200


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
    backbone_of(cfg, f'--pretrain {osp.basename(path)}: ')
    found = recipe.untrained_weights(cfg)
    if found:
        raise StudyError(f'--pretrain {osp.basename(path)} would train frozen random weights '
                         f'({", ".join(found)} in model.backbone): unfreeze them in that config')
    absolute_data_paths(cfg, os.getcwd())
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
                module, reason = recipe.build_backbone(dict(backbone, arch=s.arch))
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
        reasons = _count_reasons(verdicts)
        if len(kept) == n:
            return kept, reasons
        if not kept and len(verdicts) >= BUILD_PROBE:
            raise StudyError(f'none of the first {len(verdicts)} sampled {space} archs builds '
                             f'with the recipe: {_reasons_text(verdicts)}')
        want = max(want + 1, 2 * len(verdicts)) if kept else len(verdicts) + BUILD_PROBE


def _count_reasons(verdicts: Sequence[Optional[str]]) -> Dict[str, int]:
    """``{reason: count}`` of the draws that did not build (``None``: built)."""
    counts: Dict[str, int] = {}
    for v in verdicts:
        if v is not None:
            counts[v] = counts.get(v, 0) + 1
    return counts


def reasons_text(counts: Dict[str, int]) -> str:
    """``'3x REASON; 1x OTHER'``, most frequent first: the ``rejected`` reasons of a study."""
    return '; '.join(f'{count}x {reason}' for reason, count in
                     sorted(counts.items(), key=lambda kv: -kv[1]))


def _reasons_text(verdicts) -> str:
    return reasons_text(_count_reasons(verdicts))


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
        data_root: point the datasets at this folder
            (:func:`regnet_backbone.runtime.datasets.use_data_root`).
        max_draws: the sampler gives up (:class:`StudyError`) after this many draws.
        init: None (the recipe as written: refused when it would freeze untrained weights,
            :func:`.recipe.untrained_weights`) or ``'scratch'``
            (:func:`.recipe.train_everything`).
        pretrain: an mmpretrain classification config: two-stage trials (pretrain the sampled
            backbone with it, convert, fine-tune ``base_config`` from the result with its own
            ``frozen_stages`` / ``norm_eval``). Excludes ``init``.
        pretrain_cfg_options: ``--cfg-options`` for the classification config.
        repeats: train the first ``repeats`` samples once more, with training seed + 1
            (trials ``trial_<i>_r1``), for the seed-noise floor; at most ``n``.

    Every trial entry of ``study.json`` has ``trial``, ``sample`` (index of its distinct
    sampled arch), ``seed`` (its training seed), ``repeat`` (0, or 1 for a rerun of the same
    sample), ``arch``, ``flops``, ``params``, ``acts`` and ``in_channels`` (the changes made).
    The settings add ``init``, ``schedule`` (:func:`.recipe.schedule_of`; for two-stage
    trials with the classification schedule under ``pretrain``), ``init_changes`` and
    ``rejected`` (``count`` and ``reasons``: ``{reason: count}`` of sampled archs whose
    backbone did not build with the recipe).

    Returns:
        the content of ``study.json``. Running ``setup`` again with the same settings leaves
        the study untouched (so a scripted study can be rerun); other settings raise
        :class:`StudyError`.
    """
    from ..design import sampling
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
        study = read_json(existing)
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
    absolute_data_paths(cfg, os.getcwd())
    metric = metric or default_metric(cfg)
    backbone_of(cfg)
    init_changes: List[str] = []
    if init == 'scratch':
        init_changes = recipe.train_everything(cfg)
    elif not pretrain:
        found = recipe.untrained_weights(cfg)
        if found:
            raise _refusal(base_config, found)
    schedule = recipe.schedule_of(cfg)
    cls_cfg, backbones = None, [cfg.model.backbone]
    if pretrain:
        cls_cfg = _pretrain_recipe(osp.abspath(pretrain), pretrain_cfg_options)
        backbones.append(cls_cfg.model.backbone)
        schedule['pretrain'] = recipe.schedule_of(cls_cfg)

    def fit_check(modules):
        if len(modules) < 2:
            return
        mismatch = compare(shapes(modules[1]), shapes(modules[0]))
        if mismatch:
            raise StudyError(f'the backbone pretrained by --pretrain {osp.basename(pretrain)} '
                             f'cannot initialise the one of {osp.basename(base_config)} '
                             f'(norm {recipe.describe_norm(backbones[1])} vs '
                             f'{recipe.describe_norm(backbones[0])}; {mismatch.summary()}): make their '
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
    write_json(existing, study)  # last: a study.json means every trial config is written
    return study
