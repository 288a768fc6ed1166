"""The study report's evidence (regnet_backbone.study.report.analyze), on fabricated results.json
files.

No training: two studies of sampled networks get hand-chosen errors, repeats (``sample`` /
``repeat`` / ``seed``), two-stage records (``pretrain``), a failed trial, a done trial without
the metric and a pending one. Every expected number (p-values by enumerating every split,
bootstrap bounds, DKW half-width, the expected minimum of k of n trials, the pooled seed SD) is
computed here by hand, not read back from the code under test.
"""
import itertools
import json
import math
import statistics
from fractions import Fraction

import pytest

from regnet_backbone.design.sampling import sample
from regnet_backbone.study.analysis import (SUMMARY_FILE, compare, load_study_results, summary,
                                            verdict)
from regnet_backbone.study.layout import StudyError
from regnet_backbone.study.report import analyze, training_text

WINDOW = (100e6, 200e6)
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
MINUS = '\u2212'


def _record(trial, s, error, *, sample_index=None, repeat=None, status='done', pretrain=None,
            metric=True, **extra):
    best = {'mIoU': 100.0 - error} if metric and status == 'done' else {}
    r = dict(trial=trial, arch=s.arch, flops=s.flops, params=s.params, acts=s.acts,
             status=status, metrics_final=best, metrics_best=best,
             error='RuntimeError: boom' if status == 'failed' else None, wall_time=1.0,
             attempts=1, iterations=4)
    if sample_index is not None:
        r.update(sample=sample_index, repeat=repeat, seed=1000 + repeat)
    if pretrain is not None:
        r['pretrain'] = dict(top1=100.0 - pretrain, error=pretrain)
    return dict(r, **extra)


def _write_study(folder, space, records, **settings):
    folder.mkdir()
    study = dict(name=folder.name, space=space, n=len(records), seed=0, metric='mIoU',
                 windows=dict(flops=list(WINDOW), params=None, acts=None),
                 input_size=[224, 224], base_config='configs/x.py', **settings)
    (folder / 'results.json').write_text(json.dumps(dict(study=study, trials=records)))
    return str(folder)


def _ks(a, b):
    return max(abs(Fraction(sum(x <= t for x in a), len(a)) -
                   Fraction(sum(x <= t for x in b), len(b))) for t in set(a) | set(b))


def _mean_gap(a, b):
    return abs(Fraction(sum(b)) / len(b) - Fraction(sum(a)) / len(a))


def _exact_p(a, b, stat):
    """p of a permutation test by enumerating every split of the pooled values."""
    a, b = [Fraction(x).limit_denominator(1000) for x in a], [
        Fraction(x).limit_denominator(1000) for x in b]
    pooled, observed, hits, total = a + b, stat(a, b), 0, 0
    for idx in itertools.combinations(range(len(pooled)), len(a)):
        x = [pooled[i] for i in idx]
        y = [pooled[i] for i in range(len(pooled)) if i not in idx]
        hits += stat(x, y) >= observed
        total += 1
    return hits / total, total


@pytest.fixture(scope='module')
def studies(tmp_path_factory):
    """regnetx: 4 samples, errors 10..13, samples 0 and 1 trained twice, two-stage records.
    anynetx_a: 4 samples, errors 20..23, plus a failed, a metric-less and a pending trial."""
    base = tmp_path_factory.mktemp('studies')
    rx = sample('regnetx', 4, seed=0, flops=WINDOW)
    rx_err = [10.0, 11.0, 12.0, 13.0]
    records = [_record(f'trial_{i:03d}', s, e, sample_index=i, repeat=0, pretrain=2 * e + 1)
               for i, (s, e) in enumerate(zip(rx, rx_err))]
    records += [_record('trial_004', rx[0], 10.6, sample_index=0, repeat=1, pretrain=22.2),
                _record('trial_005', rx[1], 11.4, sample_index=1, repeat=1, pretrain=23.8)]
    regnetx = _write_study(base / 'regnetx', 'regnetx', records, init='scratch',
                           init_changes=['frozen_stages 1 -> -1'],
                           schedule=dict(max_iters=400, text='400 iterations'))
    ax = sample('anynetx_a', 7, seed=0, flops=WINDOW)
    ax_err = [20.0, 21.0, 22.0, 23.0]
    records = [_record(f'trial_{i:03d}', s, e) for i, (s, e) in enumerate(zip(ax, ax_err))]
    records += [_record('trial_004', ax[4], 0, status='failed', stage='finetune',
                        pretrain=None),
                _record('trial_005', ax[5], 0, metric=False),
                _record('trial_006', ax[6], 0, status='pending')]
    anynet = _write_study(base / 'anynetx_a', 'anynetx_a', records)
    out = base / 'report'
    with open(analyze([regnetx, anynet], str(out))) as f:
        report = f.read()
    return dict(dirs=(regnetx, anynet), out=out, report=report,
                summary=json.loads((out / SUMMARY_FILE).read_text()), rx=rx_err, ax=ax_err)


def test_summary_json_has_the_documented_fields_and_hand_checked_values(studies):
    summary, rx, ax = studies['summary'], studies['rx'], studies['ax']
    assert summary['metric'] == 'mIoU'
    by_name = {s['name']: s for s in summary['studies']}
    for s in summary['studies']:
        assert set(s) == {'name', 'n', 'mean', 'sd', 'noise_sd'}
    # one trial per sample: the reruns of regnetx samples 0 and 1 do not count in n or the mean
    assert by_name['regnetx']['n'] == 4 and by_name['anynetx_a']['n'] == 4
    assert by_name['regnetx']['mean'] == pytest.approx(11.5)
    assert by_name['regnetx']['sd'] == pytest.approx(statistics.stdev(rx))
    # pooled within-sample SD: (10, 10.6) and (11, 11.4): sqrt((0.18 + 0.08) / 2)
    assert by_name['regnetx']['noise_sd'] == pytest.approx(math.sqrt(0.26 / 2))
    assert by_name['anynetx_a']['noise_sd'] is None

    (pair,) = summary['pairs']
    assert set(pair) == {'a', 'b', 'n_a', 'n_b', 'mean_diff', 'mean_diff_ci', 'ks', 'p_ks',
                         'p_mean', 'permutations', 'verdict'}
    # the report's verdict line (what `make study` prints): regnetx, 10 points lower, first
    assert pair['verdict'].startswith(f'regnetx better than anynetx_a: mean error {MINUS}10.00 ')
    assert (pair['a'], pair['b'], pair['n_a'], pair['n_b']) == ('regnetx', 'anynetx_a', 4, 4)
    assert pair['mean_diff'] == pytest.approx(21.5 - 11.5)  # b - a
    lo, hi = pair['mean_diff_ci']
    # every bootstrap difference lies in [min(b) - max(a), max(b) - min(a)] = [7, 13]
    assert 7 <= lo < 10 < hi <= 13
    assert pair['ks'] == 1.0
    # C(8, 4) = 70 splits; only the observed one and its mirror separate the samples fully
    p_ks, splits = _exact_p(rx, ax, _ks)
    p_mean, _ = _exact_p(rx, ax, _mean_gap)
    assert pair['permutations'] == splits == 70
    assert pair['p_ks'] == pytest.approx(p_ks) == pytest.approx(2 / 70)
    assert pair['p_mean'] == pytest.approx(p_mean)


def test_report_verdict_noise_floor_and_training_are_stated(studies):
    report = studies['report']
    verdict = next(line for line in report.splitlines() if 'better than' in line)
    assert verdict.startswith(f'- regnetx better than anynetx_a: mean error {MINUS}10.00 '
                              'points (95% CI ' + MINUS)
    assert 'KS 1.00' in verdict and f'p = {2 / 70:.2g} (mean)' in verdict
    assert '(n = 4 + 4)' in verdict
    assert f'{10 / math.sqrt(0.13):.1f}x the seed-noise floor (sd 0.36)' in verdict
    # the noise floor next to the spread across samples
    assert (f'regnetx: seed sd 0.36 points (pooled over 2 sample(s), 4 trainings, 2 degrees of '
            f'freedom) against sd {statistics.stdev(studies["rx"]):.2f} across samples') in report
    assert 'anynetx_a: no seed-noise floor' in report and '--repeats K' in report
    # how the trials got their weights and which schedule ran, or that it was not recorded
    row = next(line for line in report.splitlines() if line.startswith('| regnetx | from '))
    assert 'random weights' in row and 'frozen_stages 1 -> -1' in row
    assert row.endswith('| 400 iterations |')
    assert '| anynetx_a | not recorded' in report and report.count('| not recorded |') == 1
    # one rule for a missing metric: the done trial without mIoU is listed as failed
    assert "no 'mIoU' was logged" in report and '| finetune: `RuntimeError: boom` |' in report
    assert 'Pending (not trained yet): trial_006.' in report


def test_report_draws_dkw_band_random_search_and_pretraining_correlation(studies):
    report, out = studies['report'], studies['out']
    for name in ('edf.png', 'random_search.png', 'pretrain_vs_task.png'):
        assert f']({name})' in report
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE, name
    eps = math.sqrt(math.log(2 / 0.05) / (2 * 4))  # DKW half-width at n = 4
    assert f'regnetx ±{eps:.2f}' in report and 'Dvoretzky-Kiefer-Wolfowitz' in report
    # expected minimum of k of the 4 errors and its SD, over every k-subset
    for errors, name in ((studies['rx'], 'regnetx'), (studies['ax'], 'anynetx_a')):
        cells = []
        for k in (1, 2, 4):
            mins = [min(c) for c in itertools.combinations(errors, k)]
            mean = sum(mins) / len(mins)
            sd = math.sqrt(sum((m - mean) ** 2 for m in mins) / len(mins))
            cells.append(f'{mean:.2f} ± {2 * sd:.2f}')
        assert f'| {name} | ' + ' | '.join(cells) + ' |' in report
    # regnetx's pretraining error is 2 e + 1 of its task error: r = rho = 1 over 4 samples
    assert '| regnetx | 4 | 1.00 | 1.00 |' in report
    assert '| anynetx_a | 0 | - | - |' in report


def _compare(a_dir, b_dir):
    """The verdict and the summary's pair of two study folders (no pictures drawn)."""
    a, b = load_study_results(a_dir), load_study_results(b_dir)
    c = compare(a, b)
    (pair,) = summary('mIoU', [a, b], [c])['pairs']
    return verdict(c), pair


def test_a_gap_below_the_noise_floor_says_so(tmp_path):
    s = sample('regnetx', 4, seed=1, flops=WINDOW)
    a_err, b_err = [10.0, 11.0, 12.0, 13.0], [10.5, 11.5, 12.5, 13.5]
    a = _write_study(tmp_path / 'a', 'regnetx', [
        _record(f't{i}', x, e, sample_index=i, repeat=0) for i, (x, e) in enumerate(
            zip(s, a_err))] + [_record('t4', s[0], 12.0, sample_index=0, repeat=1)])
    b = _write_study(tmp_path / 'b', 'regnetx',
                     [_record(f't{i}', x, e) for i, (x, e) in enumerate(zip(s, b_err))])
    line, pair = _compare(a, b)
    assert pair['mean_diff'] == pytest.approx(0.5)
    p_mean, splits = _exact_p(a_err, b_err, _mean_gap)
    assert pair['p_mean'] == pytest.approx(p_mean) and pair['permutations'] == splits
    assert line.startswith(f'no evidence that a and b differ: mean error {MINUS}0.50 points')
    # seed noise of sample 0: (10, 12) -> sd sqrt(2) = 1.41 > the 0.5 gap
    assert 'smaller than the seed-noise floor (sd 1.41 points' in line


def test_unknown_metric_and_empty_study(tmp_path, studies):
    with pytest.raises(StudyError, match=r"has no metric 'mDice'.*\['mIoU'\]"):
        analyze(list(studies['dirs']), str(tmp_path / 'x'), metric='mDice')
    s = sample('regnetx', 2, seed=2, flops=WINDOW)
    only_failed = _write_study(tmp_path / 'broken', 'regnetx',
                               [_record('t0', s[0], 0, status='failed')])
    ok = _write_study(tmp_path / 'ok', 'regnetx', [_record('t0', s[1], 12.0)])
    analyze([ok, only_failed], str(tmp_path / 'out'))
    summary = json.loads((tmp_path / 'out' / SUMMARY_FILE).read_text())
    assert summary['pairs'] == []
    assert summary['studies'] == [
        dict(name='ok', n=1, mean=12.0, sd=None, noise_sd=None),
        dict(name='broken', n=0, mean=None, sd=None, noise_sd=None)]


def test_training_text_of_two_stage_and_older_studies():
    weights, schedule = training_text(dict(
        init='pretrain', pretrain_config='/x/configs/fmnist_cls.py',
        schedule=dict(max_iters=400, text='400 iterations',
                      pretrain=dict(max_epochs=10, text='10 epochs'))))
    assert weights.startswith('two-stage') and '`/x/configs/fmnist_cls.py`' in weights
    assert schedule == 'pretraining 10 epochs, then 400 iterations'
    weights, schedule = training_text({})
    assert weights.startswith('not recorded') and schedule == 'not recorded'
    assert training_text(dict(init='recipe', schedule=dict(max_epochs=12, text='12 epochs'))) == (
        "the base recipe's own initialisation (it already trains everything)", '12 epochs')


def test_p_at_the_floor_of_random_permutations_is_a_bound(tmp_path):
    # 14 + 14 separated errors: C(28, 14) = 4.0e7 splits > 10000, so random splits are drawn;
    # only 2 of them are as extreme as the data (10000 draws hit one with probability 5e-4), so
    # p = (0 + 1) / (10000 + 1), which the verdict gives as a bound.
    s = sample('regnetx', 14, seed=3, flops=WINDOW)
    a = _write_study(tmp_path / 'a', 'regnetx',
                     [_record(f't{i}', x, 10.0 + i) for i, x in enumerate(s)])
    b = _write_study(tmp_path / 'b', 'regnetx',
                     [_record(f't{i}', x, 30.0 + i) for i, x in enumerate(s)])
    line, pair = _compare(a, b)
    assert pair['permutations'] == 10000 and pair['p_mean'] == pytest.approx(1 / 10001)
    assert line.startswith('a better than b')
    assert 'permutation p \u2264 0.0001 (mean), p \u2264 0.0001 (KS) (n = 14 + 14)' in line
