"""The collect stage: each trial's logged scalars into ``WORK_DIR/results.json``.

:func:`collect` reads mmengine's scalars of every trial
(:func:`regnet_backbone.runtime.logs.read_scalars`) and its ``status.json`` / ``stages.json``
(:mod:`.layout`) and writes one record per trial. The format is
documented once, in :func:`collect`; :mod:`regnet_backbone.design.results` is its one reader.
"""
import math
import os.path as osp
from typing import Dict

from ..runtime.logs import metric_values, read_scalars
from .layout import (RESULTS_FILE, TRIAL_WORK, load_study, pretrain_result, read_stages,
                     read_status, trial_dir, write_json)


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
            record.update(pretrain=pretrain_result(top1), stage=status.get('stage'))
        records.append(record)
    settings = {k: v for k, v in study.items() if k != 'trials'}
    results = dict(study=settings, trials=records)
    write_json(osp.join(work_dir, RESULTS_FILE), results)
    return results
