"""A pytest plugin for ``tools/gpu_check.py``: ``-p benchmarks.pytest_report --report-json PATH``
writes one entry per test: node id, outcome (passed, failed, skipped), the reason of a skip or a
failure (one line), the duration and the properties the test recorded (``record_property``)."""
import json

_RESULTS = []


def pytest_addoption(parser):
    parser.addoption('--report-json', default=None, metavar='PATH',
                     help='write each test\'s outcome and recorded properties as JSON')


def _reason(report) -> str:
    if report.passed:
        return ''
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (path, line, 'Skipped: why')
        return str(longrepr[2]).removeprefix('Skipped: ')
    crash = getattr(longrepr, 'reprcrash', None)
    text = crash.message if crash is not None else str(longrepr)
    return (text.strip().splitlines() or [''])[0][:300]


def pytest_runtest_logreport(report):
    # One entry per test: the call's, or the setup's when the test never got to its call.
    if report.when == 'call' or (report.when == 'setup' and not report.passed):
        _RESULTS.append(dict(test=report.nodeid, outcome=report.outcome, reason=_reason(report),
                             duration_s=round(report.duration, 3),
                             **dict(report.user_properties)))


def pytest_sessionfinish(session):
    path = session.config.getoption('--report-json')
    if path:
        with open(path, 'w') as f:
            json.dump(_RESULTS, f, indent=2, default=str)
