"""Design-space studies on a real mmdet / mmseg / mmpretrain recipe: stages joined by files.

Each stage of ``tools/study.py`` is one module, reads the files of the stage before it and can
be rerun or replaced alone (the file layout: :mod:`.layout`)::

    setup    prepare.py   sample archs, write trials/<name>/config.py and study.json
             recipe.py    a trial's config from the base recipe; how its backbone starts
    run      launch.py    train the unfinished trials, retry, write status.json
             attempt.py   one attempt: the train CLI in-process, judged; two-stage trials
             executors.py where attempts run: long-lived local workers, SLURM (submitit)
    collect  results.py   the trials' logs into results.json
    analyze  analysis.py  results.json as numbers (through design.results, its one reader),
                          tests, verdicts, summary.json
             plotting.py  the PNGs
             report.py    report.md

The stages' entry points and the names ``tools/study.py`` uses are importable from here
(``from regnet_backbone.study import setup, run, collect, analyze``); everything else from
the module that defines it. Library code: nothing here prints or exits; problems raise
:class:`StudyError`.
"""
from .analysis import SUMMARY_FILE
from .executors import SlurmOptions
from .launch import run
from .layout import RESULTS_FILE, StudyError
from .prepare import reasons_text, setup
from .report import analyze
from .results import collect

__all__ = ['RESULTS_FILE', 'SUMMARY_FILE', 'SlurmOptions', 'StudyError', 'analyze', 'collect',
           'reasons_text', 'run', 'setup']
