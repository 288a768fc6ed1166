"""The paper's refinement on real data: AnyNetX_A -> B -> C -> D -> E -> RegNet, one verdict a step.

The protocol is fixed here, before any run (:data:`SPACES`, :data:`TRIALS_PER_SPACE`,
:data:`RERUNS_PER_SPACE`, :data:`MARGIN`, :data:`ALPHA`), with the recipe and flops window of
``make study`` and a schedule timed to fit an hour on two cores (the recipe is
``configs/demo/study/regnet_refinement_fashion_mnist.py``). Each space is one study folder
``OUT/<space>`` made by the ordinary stages (setup, run, collect); this module adds the analysis
across them:

* one step per refinement (:data:`STEPS`) with the paper's claim, the mean difference (later
  minus earlier, error points) and its bootstrap interval, KS, the permutation p-values, the
  two one-sided tests against :data:`MARGIN` and Holm's correction over the six steps, and a
  verdict (:mod:`.verdicts`);
* the within-space findings the paper reads off its figures: the best bottleneck ratio in B and
  group width in C, the share of the best models with increasing widths (C) and depths (D), and
  the quantized linear fit's error of AnyNetX_E's best models against all of them;
* ``summary.json`` (``steps``, ``findings``, ``noise``), ``report.md`` and one picture.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence

from ..atomic import replace_bytes
from .analysis import (ALPHA, SUMMARY_FILE, Study, best_value_interval, compare,
                       load_study_results)
from .layout import StudyError, read_json, write_json
from .verdicts import judge_steps, tost

#: The spaces in the paper's order (sampling.SPACES names).
SPACES = ('anynetx_a', 'anynetx_b', 'anynetx_c', 'anynetx_d', 'anynetx_e', 'regnet')
NAMES = dict(anynetx_a='AnyNetX_A', anynetx_b='AnyNetX_B', anynetx_c='AnyNetX_C',
             anynetx_d='AnyNetX_D', anynetx_e='AnyNetX_E', regnet='RegNet')
#: (earlier, later, the paper's claim about later against earlier)
STEPS = (('anynetx_a', 'anynetx_b', 'no loss'), ('anynetx_b', 'anynetx_c', 'no loss'),
         ('anynetx_c', 'anynetx_d', 'better'), ('anynetx_d', 'anynetx_e', 'better'),
         ('anynetx_e', 'regnet', 'better'), ('anynetx_a', 'regnet', 'better'))
TRIALS_PER_SPACE = 24
#: The fewest trained trials a space needs for its steps to be tested (two a side).
MIN_TRIALS = 2
#: Samples of each space trained a second time with another seed: 12 reruns in all, spread
#: over the six spaces, for the seed-noise floor (``make study`` had 4, all RegNetX).
RERUNS_PER_SPACE = 2
#: The equivalence margin in error points, fixed before the run: a mean loss under one point
#: counts as "no loss". It is about twice the larger of the two seed-noise SDs that ``make study``
#: measured with its 400 steps (0.19 and 0.60 points); the shorter schedule here is noisier, and
#: the report gives the seed noise this run measures beside it.
MARGIN = 1.0
#: The share of a space's models that count as its best (the paper reads the good models).
BEST_SHARE = 0.25
REPORT_FILE = 'report.md'
PICTURE_FILE = 'refinement.png'


def space_dirs(out: str) -> Dict[str, str]:
    """The study folder of each space under ``out``."""
    return {space: osp.join(out, space) for space in SPACES}


def setup(config: str, out: str, *, n: int = TRIALS_PER_SPACE,
          repeats: int = RERUNS_PER_SPACE, **kwargs) -> Dict[str, str]:
    """Set up one study per space of :data:`SPACES` under ``out`` (:func:`.prepare.setup` with
    ``kwargs``: seed, flops, cfg_options, data_root); returns the study folders."""
    if n < MIN_TRIALS:
        raise StudyError(f'n = {n}: each step compares two spaces of at least {MIN_TRIALS} '
                         f'trials; use {TRIALS_PER_SPACE} (the protocol) or at least '
                         f'{MIN_TRIALS}.')
    from .prepare import setup as setup_study
    dirs = space_dirs(out)
    for space, work_dir in dirs.items():
        setup_study(config, work_dir, space=space, n=n, repeats=repeats, **kwargs)
    return dirs


def load_spaces(out: str) -> Dict[str, Study]:
    """Each space's collected results (``OUT/<space>/results.json``)."""
    return {space: load_study_results(path) for space, path in space_dirs(out).items()}


def step_entries(studies: Dict[str, Study], margin: float = MARGIN,
                 alpha: float = ALPHA) -> List[dict]:
    """One entry per step of :data:`STEPS` (the keys of ``summary.json``'s ``steps``)."""
    raw = []
    for a, b, claim in STEPS:
        sa, sb = studies[a], studies[b]
        if min(len(sa.errors), len(sb.errors)) < MIN_TRIALS:
            raise StudyError(f'{a} -> {b}: each space needs at least {MIN_TRIALS} trained '
                             f'trials, have {len(sa.errors)} and {len(sb.errors)}')
        c = compare(sa, sb)
        eq = tost(sa.errors, sb.errors, margin)
        raw.append(dict(a=a, b=b, claim=claim, n_a=len(sa.errors), n_b=len(sb.errors),
                        mean_diff=c.mean_diff, ci=list(c.mean_diff_ci), ks=c.ks,
                        p_mean=c.p_mean, p_ks=c.p_ks, margin=margin, p_equivalence=eq.p,
                        best_diff=sb.errors[0] - sa.errors[0]))
    return judge_steps(raw, alpha)


def _increasing(values: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(values, values[1:]))


def _share(trials, test) -> Optional[float]:
    return sum(1 for t in trials if test(t)) / len(trials) if trials else None


def _best(study: Study):
    return study.trials[:max(1, round(BEST_SHARE * len(study.trials)))]


def findings(studies: Dict[str, Study]) -> dict:
    """The within-space findings: intervals of the best b (the paper's b = w / w_b) in B and
    of the best g in C (:func:`.analysis.best_value_interval`: the paper's empirical bootstrap),
    the shares of increasing widths in C and depths in D among the best models and among all,
    and the mean e_fit of AnyNetX_E's best models against all of its models."""
    from ..design.presets import resolve_arch
    out = {}
    ratio = best_value_interval(studies['anynetx_b'], 'b')  # ours: w_b / w
    out['best_b_in_B'] = None if ratio is None else sorted(1 / v for v in ratio)
    out['best_g_in_C'] = best_value_interval(studies['anynetx_c'], 'g')
    for space, key, attr in (('anynetx_c', 'increasing_widths', 'widths'),
                             ('anynetx_d', 'increasing_depths', 'depths')):
        study = studies[space]

        def test(t, attr=attr):
            return _increasing(getattr(resolve_arch(t.arch), attr))

        best = _best(study)
        out[f'{key}_in_{NAMES[space][-1]}'] = dict(best=_share(best, test),
                                                   all=_share(study.trials, test),
                                                   n_best=len(best))
    e = studies['anynetx_e']
    best, every = _best(e), e.trials
    out['e_fit_in_E'] = dict(best=sum(t.fit.e_fit for t in best) / len(best),
                             all=sum(t.fit.e_fit for t in every) / len(every),
                             n_best=len(best)) if every else None
    return out


def noise_floor(studies: Dict[str, Study]) -> Optional[dict]:
    """The seed-noise SD pooled over the reruns of every space."""
    from .stats import pooled_sd
    groups = [g for s in studies.values() for g in s.seed_groups]
    noise = pooled_sd(groups)
    return None if noise is None else dict(sd=noise.sd, groups=noise.groups, dof=noise.dof)


def summarize(out: str, trials_per_hour: Optional[float] = None) -> dict:
    """``summary.json`` of a refinement study under ``out``, written there and returned.
    ``trials_per_hour`` None (a rerun that trained nothing) keeps the value already there."""
    studies = load_spaces(out)
    path = osp.join(out, SUMMARY_FILE)
    if trials_per_hour is None and osp.exists(path):
        trials_per_hour = read_json(path).get('trials_per_hour')
    summary = dict(protocol=dict(spaces=list(SPACES), trials_per_space=TRIALS_PER_SPACE,
                                 reruns_per_space=RERUNS_PER_SPACE, margin=MARGIN,
                                 alpha=ALPHA, best_share=BEST_SHARE),
                   spaces={s: dict(name=NAMES[s], n=len(st.errors),
                                   mean=sum(st.errors) / len(st.errors) if st.errors else None,
                                   best=st.errors[0] if st.errors else None,
                                   failed=len(st.failed), pending=len(st.pending))
                           for s, st in studies.items()},
                   steps=step_entries(studies), findings=findings(studies),
                   noise=noise_floor(studies), trials_per_hour=trials_per_hour)
    write_json(path, summary)
    from .plotting import plot_refinement
    plot_refinement(studies, NAMES, summary['steps'], osp.join(out, PICTURE_FILE))
    replace_bytes(osp.join(out, REPORT_FILE), report_text(summary).encode())
    return summary


def _interval(values) -> str:
    return 'n/a' if values is None else f'{values[1]:.3g} (95%: {values[0]:.3g} to {values[2]:.3g})'


def _share_text(entry: Optional[dict]) -> str:
    if entry is None or entry['best'] is None:
        return 'n/a'
    if entry['all'] == 0:
        return 'no sample has them: the data cannot tell'
    return (f"{100 * entry['best']:.0f}% of the best {entry['n_best']} vs "
            f"{100 * entry['all']:.0f}% of all")


def step_sentence(step: dict) -> str:
    """One step's verdict in a sentence, beside the paper's claim: a later space found worse
    contradicts the paper; an inconclusive step (or an equivalent one where the paper says
    better) does not support it."""
    a, b, ci = NAMES[step['a']], NAMES[step['b']], step['ci']
    if step['agrees']:
        stance = ''
    else:
        stance = ('; the data contradict it' if step['verdict'] == 'worse' else
                  '; the data do not support it')
    return (f"{a} \u2192 {b}: {step['verdict']} (the paper: {step['claim']}{stance}). Mean "
            f"error {step['mean_diff']:+.2f} points, 95% CI {ci[0]:+.2f} to {ci[1]:+.2f}, "
            f"p (Holm) {step['p_holm']:.2g}, TOST p (Holm, \u00b1{step['margin']:g}) "
            f"{step['p_equivalence_holm']:.2g}; best model {step['best_diff']:+.2f} points.")


def report_text(summary: dict) -> str:
    """``report.md``: the verdict table, each step in a sentence, the findings and the noise."""
    lines = ['# The paper\'s refinement, step by step', '',
             f"Errors in percent; \u0394 = mean error of the later space minus the earlier. "
             f"Equivalence margin \u00b1{MARGIN:g} points (TOST), Holm over the "
             f"{len(summary['steps'])} steps, \u03b1 = {ALPHA:g}.", '',
             '| step | paper | n | \u0394 mean [95% CI] | KS | p mean | p KS | p (Holm) | '
             'TOST p (Holm) | verdict | agrees |', '|' + '---|' * 11]
    for s in summary['steps']:
        lines.append(f"| {NAMES[s['a']]} \u2192 {NAMES[s['b']]} | {s['claim']} | "
                     f"{s['n_a']} + {s['n_b']} | {s['mean_diff']:+.2f} [{s['ci'][0]:+.2f}, "
                     f"{s['ci'][1]:+.2f}] | {s['ks']:.2f} | {s['p_mean']:.2g} | {s['p_ks']:.2g} | "
                     f"{s['p_holm']:.2g} | {s['p_equivalence_holm']:.2g} | {s['verdict']} | "
                     f"{'yes' if s['agrees'] else '**no**'} |")
    against = [s for s in summary['steps'] if not s['agrees']]
    lines += [''] + [f'- {step_sentence(s)}' for s in summary['steps']]
    lines += ['', 'The data contradict or fail to support the paper at: ' + (', '.join(
        f"{NAMES[s['a']]} \u2192 {NAMES[s['b']]} ({s['verdict']} where the paper says "
        f"{s['claim']})" for s in against) + '.' if against else
        'Every step agrees with the paper\'s claim.')]
    f = summary['findings']
    lines += ['', '## Within the spaces', '',
              f"- best b in AnyNetX_B (paper's b = w / w_b): {_interval(f['best_b_in_B'])}",
              f"- best g in AnyNetX_C: {_interval(f['best_g_in_C'])}",
              f"- increasing widths in AnyNetX_C: {_share_text(f['increasing_widths_in_C'])}",
              f"- increasing depths in AnyNetX_D: {_share_text(f['increasing_depths_in_D'])}"]
    e = f['e_fit_in_E']
    if e:
        lines.append(f"- mean e_fit in AnyNetX_E: {e['best']:.3f} for the best {e['n_best']} vs "
                     f"{e['all']:.3f} for all")
    noise = summary['noise']
    lines += ['', '## Noise and speed', '',
              '- seed noise: ' + (f"sd {noise['sd']:.2f} points ({noise['groups']} networks "
                                  f"trained twice, {noise['dof']} degrees of freedom)"
                                  if noise else 'not measured (no reruns)'),
              '- trials per hour: ' + (f"{summary['trials_per_hour']:.0f}"
                                       if summary.get('trials_per_hour') else 'not measured')]
    return '\n'.join(lines) + '\n'
