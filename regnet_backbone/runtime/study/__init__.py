"""Design-space studies on a real mmdet / mmseg / mmpretrain recipe: stages joined by files.

Each stage of ``tools/study.py`` is one module, reads the files of the stage before it and can
be rerun or replaced alone (the file layout: :mod:`.layout`)::

    setup    prepare.py   sample archs, write trials/<name>/config.py and study.json
             recipe.py    a trial's config from the base recipe; how its backbone starts
    run      launch.py    train the unfinished trials, retry, write status.json
             attempt.py   one attempt: tools/train.py in a subprocess, judged; two-stage trials
             executors.py where attempts run: local processes, SLURM (submitit)
             workers.py   long-lived local workers that run tools/train.py in-process
    collect  results.py   the trials' logs into results.json
    analyze  analysis.py  results.json as numbers (through design.results, its one reader),
                          tests, verdicts, summary.json
             plotting.py  the PNGs
             report.py    report.md

Every public name is importable from here (``from regnet_backbone.runtime.study import setup,
run, collect, analyze``). Library code: nothing here prints or exits; problems raise
:class:`StudyError`.
"""
import sys
import types

from . import recipe as trial_recipe  # noqa: F401  (the module's old name)
from .analysis import (ALPHA, BOOTSTRAP_ROUNDS, MAX_BINS, PERMUTATIONS,  # noqa: F401
                       SUMMARY_FILE, Comparison, Study, Trial, compare, describe_arch,
                       load_study_results, pretrain_pairs, random_search_curves, summary,
                       verdict)
from .attempt import (Attempt, _job_rank, _train_stage, _two_stage_attempt,  # noqa: F401
                      judge, output_files, train_argv, train_attempt)
from .executors import (EXECUTORS, POLL_S, SlurmOptions, _LocalBackend,  # noqa: F401
                        _outcome, _SubmititBackend, make_backend)
from .launch import RUN_LOCK, Progress, StudyLock, _lock, run  # noqa: F401
from .layout import (DEFAULT_TRAIN_TOOL, FORMAT_VERSION, LAST_CHECKPOINT,  # noqa: F401
                     PRETRAIN_DIR, PRETRAINED_FILE, RESULTS_FILE, SETTING_DEFAULTS, STAGES,
                     STAGES_FILE, STATUS_FILE, STUDY_FILE, TRIAL_CONFIG, TRIAL_WORK, TRIALS_DIR,
                     StudyError, _has_checkpoint, _last_checkpoint, _pretrain_result,
                     _read_json, _write_json, load_study, pending_stage, read_stages,
                     read_status, trial_dir)
from .plotting import (PARAMETERS, WIDTH_PLOTS, plot_block_widths, plot_edfs,  # noqa: F401
                       plot_parameters, plot_pretrain_correlation, plot_random_search)
from .prepare import (BUILD_PROBE, _buildable_samples, _pretrain_recipe,  # noqa: F401
                      _reasons_text, _refusal, _training_seed, _windows, reasons_text, setup)
from .recipe import (_absolute_data_paths, backbone_of, default_metric,  # noqa: F401
                     trial_config)
from .report import NOISE_NOTE, REPORT_FILE, TOP_K, analyze, arch_line, training_text  # noqa: F401
from .results import collect  # noqa: F401
from .workers import WorkerBackend  # noqa: F401

_MISSING = object()


class _OneNamespace(types.ModuleType):
    """This package, as one namespace for assignments: ``study.NAME = value`` (what
    ``monkeypatch.setattr(study, NAME, value)`` does) also rebinds ``NAME`` in each of the
    package's modules that holds the same object, so the code there sees the new value, as it
    did when the study was a single module."""

    def __setattr__(self, name: str, value) -> None:
        old = self.__dict__.get(name, _MISSING)
        if old is not _MISSING and not isinstance(old, types.ModuleType):
            prefix = self.__name__ + '.'
            for key, module in list(sys.modules.items()):
                if key.startswith(prefix) and getattr(module, name, _MISSING) is old:
                    setattr(module, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _OneNamespace
