"""Kept for old imports; the code lives in runtime/study/ (analysis.py, plotting.py, report.py)."""
from .study.analysis import (ALPHA, BOOTSTRAP_ROUNDS, MAX_BINS, PERMUTATIONS,  # noqa: F401
                             SUMMARY_FILE, Comparison, Study, Trial, compare, describe_arch,
                             load_study_results, pretrain_pairs, random_search_curves, summary,
                             verdict)
from .study.layout import RESULTS_FILE, StudyError  # noqa: F401
from .study.plotting import (PARAMETERS, WIDTH_PLOTS, plot_block_widths, plot_edfs,  # noqa: F401
                             plot_parameters, plot_pretrain_correlation, plot_random_search)
from .study.report import (NOISE_NOTE, REPORT_FILE, TOP_K, analyze, arch_line,  # noqa: F401
                           training_text)
