"""The GPU check's numeric tests (``tools/gpu_check.py`` runs them; so can ``pytest tests/gpu``).

They need CUDA: without it every test here is reported as skipped, "CUDA is not available".
``--gpu-archs`` (comma-separated presets) and ``--gpu-shape`` (BATCHxHEIGHTxWIDTH) choose the
networks and the input; the defaults are the benchmark's two archs at 4x3x96x96. Train-mode BN
normalises over batch x height x width of the last stage: keep that at 16 values or more (e.g.
batch 4 at 64x64), or fp32 rounding is amplified by near-zero batch variances.
"""
import pytest
import torch

ARCHS = 'regnetx_3.2gf,regnety_1.6gf'
SHAPE = '4x96x96'


def pytest_addoption(parser):
    group = parser.getgroup('gpu', 'the GPU check (tests/gpu)')
    group.addoption('--gpu-archs', default=ARCHS, help=f'comma-separated presets ({ARCHS})')
    group.addoption('--gpu-shape', default=SHAPE, help=f'BATCHxHEIGHTxWIDTH ({SHAPE})')


def pytest_generate_tests(metafunc):
    if 'arch' in metafunc.fixturenames:
        archs = metafunc.config.getoption('--gpu-archs', default=ARCHS).split(',')
        metafunc.parametrize('arch', [a.strip() for a in archs if a.strip()])


@pytest.fixture
def shape(request):
    """(batch, height, width) of the test images."""
    batch, height, width = request.config.getoption('--gpu-shape', default=SHAPE).split('x')
    return int(batch), int(height), int(width)


@pytest.fixture
def cuda():
    """The CUDA device; the test is skipped where there is none."""
    if not torch.cuda.is_available():
        pytest.skip('CUDA is not available')
    return torch.device('cuda')
