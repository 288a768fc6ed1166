"""The files and folders of a study, and :class:`StudyError`.

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

"Finished" means ``status.json`` says ``done``: it is written atomically, after the train CLI
returned 0 and its validation metrics were read. A trial without ``status.json`` is pending; when
its work dir holds a checkpoint, the next attempt resumes from it (``--resume``).

Everything here reads or writes these files; nothing imports torch or mmengine.
"""
import json
import os.path as osp
from typing import Optional

from ..atomic import replace_bytes
from ..runtime.errors import ToolError

STUDY_FILE = 'study.json'
RESULTS_FILE = 'results.json'
STATUS_FILE = 'status.json'
TRIALS_DIR = 'trials'
TRIAL_CONFIG = 'config.py'
TRIAL_WORK = 'work'
PRETRAIN_DIR = 'pretrain'
PRETRAINED_FILE = 'pretrained.pth'
STAGES_FILE = 'stages.json'
#: The stages of a two-stage trial, as a failure names them (``status.json`` ``stage``).
STAGES = ('pretrain', 'convert', 'finetune')
FORMAT_VERSION = 1
#: Settings a study.json written before they existed is read with.
SETTING_DEFAULTS = dict(init='recipe', pretrain_config=None, pretrain_cfg_options={}, repeats=0)
#: What trains a trial: the package's own train CLI (a module with ``main(argv)``, the one
#: behind ``python -m regnet_backbone.runtime.train``), so an installed package runs studies
#: without a checkout. A ``.py`` file with a ``main(argv)`` is accepted too.
DEFAULT_TRAIN_TOOL = 'regnet_backbone.runtime.train'


class StudyError(ToolError):
    """A study cannot be set up, run, collected or analysed; the message is one line."""


def write_json(path: str, data) -> None:
    """``data`` as indented JSON in ``path``, replaced atomically."""
    replace_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + '\n').encode())


def read_json(path: str):
    """The JSON in ``path``; :class:`StudyError` when it is missing or not JSON."""
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
    return read_json(path)


def trial_dir(work_dir: str, trial: str) -> str:
    return osp.join(work_dir, TRIALS_DIR, trial)


def read_status(work_dir: str, trial: str) -> Optional[dict]:
    """A trial's ``status.json`` (``status``: ``done`` or ``failed``, ``attempts``,
    ``wall_time`` in seconds, ``error``), or None while it is pending."""
    path = osp.join(trial_dir(work_dir, trial), STATUS_FILE)
    return read_json(path) if osp.isfile(path) else None


def read_stages(work_dir: str, trial: str) -> dict:
    """A two-stage trial's ``stages.json``: ``{'pretrain': {'status': 'done', 'top1',
    'metric', 'checkpoint', 'wall_time'}, 'convert': {'status': 'done', 'file', 'source',
    'tensors'}}``, each key present once that stage is done; ``{}`` before."""
    path = osp.join(trial_dir(work_dir, trial), STAGES_FILE)
    return read_json(path) if osp.isfile(path) else {}


def pending_stage(work_dir: str, trial: str) -> str:
    """The first unfinished stage of a two-stage trial: ``pretrain``, ``convert`` or
    ``finetune``."""
    stages = read_stages(work_dir, trial)
    for stage in STAGES[:2]:
        if (stages.get(stage) or {}).get('status') != 'done':
            return stage
    return STAGES[2]


def pretrain_result(top1: Optional[float]) -> Optional[dict]:
    """``{'top1', 'error'}`` (percent) of a classification top-1 accuracy in percent: the
    ``pretrain`` field of ``status.json`` and ``results.json``."""
    return None if top1 is None else dict(top1=float(top1), error=100.0 - float(top1))
