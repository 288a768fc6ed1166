"""`make study-refinement` (tools/study.py refinement), CI-sized: 2 samples a space plus 1 rerun,
4 steps of 8 real Fashion-MNIST images each, through the local executor; it writes every file the
report needs and one verdict per step, with the numbers summary.json promises; run again, it
resumes."""
import json
import os.path as osp

from regnet_backbone.study import refinement
from regnet_backbone.study.verdicts import VERDICTS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
STEP_KEYS = {'a', 'b', 'claim', 'n_a', 'n_b', 'mean_diff', 'ci', 'ks', 'p_mean', 'p_ks',
             'p_holm', 'margin', 'p_equivalence', 'p_equivalence_holm', 'verdict', 'agrees'}


def test_refinement_end_to_end_on_a_slice(fashion_mnist_root, study_slice, tmp_path, run_tool):
    out = tmp_path / 'refinement'
    proc = run_tool(
        osp.join(ROOT, 'tools', 'study.py'), 'refinement', '--out', out, '--data-root',
        fashion_mnist_root, '--seed', 1, *study_slice, env=dict(OMP_NUM_THREADS=1), timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / refinement.SUMMARY_FILE).read_text())
    steps = summary['steps']
    assert [(s['a'], s['b'], s['claim']) for s in steps] == list(refinement.STEPS)
    for s in steps:
        assert STEP_KEYS <= set(s)
        assert s['n_a'] == s['n_b'] == 2 and s['verdict'] in VERDICTS
        assert s['ci'][0] <= s['mean_diff'] <= s['ci'][1]
        assert s['p_holm'] >= s['p_mean'] and s['margin'] == refinement.MARGIN
    assert summary['noise']['groups'] == len(refinement.SPACES)  # one rerun a space
    assert summary['trials_per_hour'] > 0
    assert set(summary['findings']) >= {'best_b_in_B', 'best_g_in_C', 'e_fit_in_E'}
    picture = out / refinement.PICTURE_FILE
    assert picture.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    report = (out / refinement.REPORT_FILE).read_text()
    assert report.count(' | no loss | ') == 2 and report.count(' | better | ') == 4
    printed = [line for line in proc.stdout.splitlines() if '(the paper: ' in line]
    assert len(printed) == len(refinement.STEPS)

    # the same command again resumes: every trial is skipped, and the verdicts are the same
    again = run_tool(*proc.args[1:], env=dict(OMP_NUM_THREADS=1), timeout=600, check=True)
    skipped = [line for line in again.stdout.splitlines() if 'earlier: skipped' in line]
    assert len(skipped) == 3 * len(refinement.SPACES) and ' started ' not in again.stdout
    assert json.loads((out / refinement.SUMMARY_FILE).read_text())['steps'] == steps


def test_the_refinement_recipe_is_make_studys_with_a_shorter_schedule():
    from mmengine.config import Config
    study_dir = osp.join(ROOT, 'configs', 'demo', 'study')
    ours = Config.fromfile(osp.join(study_dir, 'regnet_refinement_fashion_mnist.py')).to_dict()
    base = Config.fromfile(osp.join(study_dir, 'regnet_study_fashion_mnist.py')).to_dict()
    schedule = {'max_iters', 'warmup_iters', 'param_scheduler', 'train_cfg', 'default_hooks',
                'log_processor'}
    assert {k: v for k, v in ours.items() if k not in schedule} == \
        {k: v for k, v in base.items() if k not in schedule}
    assert ours['train_cfg']['max_iters'] == ours['train_cfg']['val_interval'] == 60
    warmup, cosine = ours['param_scheduler']
    assert (warmup['end'], cosine['begin'], cosine['end']) == (3, 3, 60)  # 5%, then to the end
    assert cosine['T_max'] == 57 and cosine['eta_min'] == 0
    assert ours['default_hooks']['checkpoint']['interval'] == 60
    # the rest of the hooks as make study's
    for name, hook in base['default_hooks'].items():
        if name not in ('checkpoint', 'logger'):
            assert ours['default_hooks'][name] == hook


def test_too_few_trials_is_refused_before_anything_is_set_up(fashion_mnist_root, tmp_path,
                                                            run_tool):
    out = tmp_path / 'refinement'
    proc = run_tool(osp.join(ROOT, 'tools', 'study.py'), 'refinement', '--out', out, '--n', 1,
                    '--data-root', fashion_mnist_root)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith('error: n = 1: each step compares two spaces of at least 2 ')
    assert not out.exists()
