"""CUDA computes what the CPU computes: our backbone's outputs and parameter gradients on the GPU
in each precision and layout, against our model on the CPU in float64, each within a stated bound.

The reference is the published network (``tests/test_gpu_check.py`` checks it against timm's
RegNet with the same weights), and each case catches the fault it is there for (the same file
plants them on the CPU, where :func:`measure` runs as well).
"""
import contextlib
import copy
import functools
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import pytest
import torch

from regnet_backbone import RegNetBackbone
from regnet_backbone.benchmark import relative_error

#: Norm-wise relative error bounds (outputs, gradients): ||a - b|| / ||b|| over all outputs, or
#: over all parameter gradients. Calibrated on this project's CPU (2026-11-28, regnetx_3.2gf and
#: regnety_1.6gf at 4x3x96x96) with about 3x margin: fp32 4.6e-7 / 1.3e-6; channels_last vs NCHW
#: 9.6e-7 / 3.6e-4 (a few ReLUs whose input is near 0 flip under another summation order);
#: AMP fp16 1.7e-3 / 8.1e-2 and bf16 1.3e-2 / 2.1e-1: rounding every layer's activations to 11
#: or 8 mantissa bits leaves a deep net's weight gradients some percent off, the known cost of
#: AMP. TF32 (10 mantissa bits, cuDNN's default for fp32 convs on Ampere and later) gets fp16's.
BOUNDS = {
    'fp64': (1e-8, 1e-8),        # same math, other kernels: only summation order differs
    'fp32': (1e-4, 1e-3),        # fp32 (TF32 off) against the fp64 reference
    'tf32': (5e-3, 2.5e-1),
    'amp_fp16': (5e-3, 2.5e-1),
    'amp_bf16': (4e-2, 6e-1),
    'same_math': (1e-5, 2e-3),   # one device and dtype; another layout, recompute, or BN folded
}


@dataclass(frozen=True)
class Case:
    """One comparison. ``against``: 'float64' (the CPU float64 model) or 'float32' (this device's
    float32 NCHW model, TF32 off: same math, another layout, recompute or BN folded).
    ``tf32``: False switches TF32 off for convs and matmuls; None leaves torch's defaults."""
    check: str
    bounds: str
    dtype: torch.dtype = torch.float32
    mode: str = 'eval'
    autocast: Optional[torch.dtype] = None
    channels_last: bool = False
    with_cp: bool = False
    deploy: bool = False
    tf32: Optional[bool] = False
    against: str = 'float64'


CASES: Dict[str, Case] = {
    'fp64-train': Case('{device} float64 vs CPU float64, train mode', 'fp64', torch.float64,
                       'train'),
    'fp64-eval': Case('{device} float64 vs CPU float64, eval mode', 'fp64', torch.float64),
    'fp32-train': Case('{device} float32 vs CPU float64, train mode', 'fp32', mode='train'),
    'fp32-eval': Case('{device} float32 vs CPU float64, eval mode', 'fp32'),
    'channels_last': Case('channels_last vs NCHW (float32, train mode)', 'same_math',
                          mode='train', channels_last=True, against='float32'),
    'with_cp': Case('with_cp vs without (float32, train mode)', 'same_math', mode='train',
                    with_cp=True, against='float32'),
    'deploy': Case('deploy (BN folded) vs eval mode (float32)', 'same_math', deploy=True,
                   against='float32'),
    'deploy-channels_last': Case('deploy + channels_last vs eval mode (float32)', 'same_math',
                                 deploy=True, channels_last=True, against='float32'),
    'tf32': Case('{device} float32 with TF32 convs (the default) vs CPU float64, eval mode',
                 'tf32', tf32=None),
    'amp_fp16': Case('AMP fp16 vs CPU float64, eval mode', 'amp_fp16', autocast=torch.float16,
                     tf32=None),
    'amp_fp16-channels_last': Case('AMP fp16 vs CPU float64, eval mode, channels_last',
                                   'amp_fp16', autocast=torch.float16, channels_last=True,
                                   tf32=None),
    'amp_bf16': Case('AMP bf16 vs CPU float64, eval mode', 'amp_bf16', autocast=torch.bfloat16,
                     tf32=None),
    'amp_bf16-channels_last': Case('AMP bf16 vs CPU float64, eval mode, channels_last',
                                   'amp_bf16', autocast=torch.bfloat16, channels_last=True,
                                   tf32=None),
}


def reference_model(arch: str, size: Tuple[int, int], seed: int = 0) -> RegNetBackbone:
    """Our backbone with pycls init and BN running statistics measured on 16 random images, so
    eval mode is as well scaled as training (the initial statistics, mean 0 and variance 1,
    would let activations grow with depth and overflow fp16)."""
    torch.manual_seed(seed)
    model = RegNetBackbone(arch, zero_init_residual=False, norm_eval=False)
    model.init_weights()
    # Residual branches at 0.1 (each block's last BN scale), as in a trained network whose
    # blocks refine rather than replace their input. At unit scale a random deep ReLU net is
    # chaotic: its gradients change by percents under fp32 rounding alone, and no bound could
    # tell a wrong kernel from that.
    for name, m in model.named_modules():
        if name.endswith('norm3'):
            torch.nn.init.constant_(m.weight, 0.1)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 3, *size))
    for m in norms:
        m.momentum = 0.1
    return model


@contextlib.contextmanager
def _tf32(enabled: Optional[bool]):
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    if enabled is not None:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@functools.lru_cache(maxsize=2)
def _setup(arch: str, shape: Tuple[int, int, int]):
    """The float64 CPU model, the images and the loss's fixed random projections."""
    torch.manual_seed(1)
    images = torch.randn(shape[0], 3, *shape[1:], dtype=torch.float64)
    base = reference_model(arch, shape[1:]).double().eval()
    with torch.no_grad():  # eval mode: the projections must not move base's statistics
        weights = [torch.randn_like(o) for o in base(images)]
    return base, images, weights


def _run(case: Case, arch: str, device: torch.device, shape: Tuple[int, int, int]):
    """Outputs and parameter gradients (None in deploy mode, which is inference only) of loss =
    sum_i <out_i, w_i> for ``case`` on ``device``."""
    base, images, weights = _setup(arch, shape)
    model = copy.deepcopy(base).to(device=device, dtype=case.dtype)
    if case.with_cp:
        for module in model.modules():
            if hasattr(module, 'with_cp'):
                module.with_cp = True
    x = images.to(device=device, dtype=case.dtype)
    model.train(case.mode == 'train')
    if case.deploy:
        model.switch_to_deploy()
    if case.channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with _tf32(case.tf32):
        if case.deploy:
            with torch.no_grad():
                return [o.detach() for o in model(x)], None
        ctx = (torch.autocast(device_type=device.type, dtype=case.autocast) if case.autocast
               else contextlib.nullcontext())
        with ctx:
            outs = model(x)
        w_dtype = torch.float64 if case.dtype == torch.float64 else torch.float32
        loss = sum((o.to(w_dtype) * w.to(device=device, dtype=w_dtype)).sum()
                   for o, w in zip(outs, weights))
        loss.backward()
    grads = [p.grad.detach().clone() for p in model.parameters() if p.grad is not None]
    return [o.detach() for o in outs], grads


@functools.lru_cache(maxsize=8)
def _reference(against: str, mode: str, arch: str, device: torch.device,
               shape: Tuple[int, int, int]):
    if against == 'float64':
        return _run(Case('', 'fp64', torch.float64, mode), arch, torch.device('cpu'), shape)
    return _run(Case('', 'fp32', mode=mode), arch, device, shape)


def clear_caches() -> None:
    """Forget the cached models and references (after changing :func:`reference_model`)."""
    _setup.cache_clear()
    _reference.cache_clear()


def measure(name: str, arch: str, device: torch.device,
            shape: Tuple[int, int, int]) -> Dict[str, Optional[float]]:
    """The relative errors of case ``name`` for ``arch`` on ``device``: ``output_error`` and
    ``grad_error`` (None for deploy, compared on outputs only)."""
    case = CASES[name]
    out, grad = _run(case, arch, device, shape)
    ref_out, ref_grad = _reference(case.against, case.mode, arch, device, shape)
    return dict(output_error=relative_error(out, ref_out),
                grad_error=relative_error(grad, ref_grad) if grad is not None else None)


def passes(name: str, errors: Dict[str, Optional[float]]) -> bool:
    out_bound, grad_bound = BOUNDS[CASES[name].bounds]
    return errors['output_error'] <= out_bound and (errors['grad_error'] is None or
                                                    errors['grad_error'] <= grad_bound)


@pytest.mark.parametrize('name', list(CASES))
def test_matches_reference(name, arch, shape, cuda, record_property):
    case = CASES[name]
    if name == 'tf32' and not torch.backends.cudnn.allow_tf32:
        pytest.skip('cuDNN TF32 convs are off in this torch build')
    if case.autocast == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        pytest.skip(f'{torch.cuda.get_device_name(cuda)} has no bf16')
    errors = measure(name, arch, cuda, shape)
    out_bound, grad_bound = BOUNDS[case.bounds]
    record_property('check', case.check.format(device=cuda.type))
    record_property('arch', arch)
    record_property('output_error', errors['output_error'])
    record_property('tolerance', out_bound)
    record_property('grad_error', errors['grad_error'])
    record_property('grad_tolerance', grad_bound if errors['grad_error'] is not None else None)
    assert errors['output_error'] <= out_bound, errors
    assert errors['grad_error'] is None or errors['grad_error'] <= grad_bound, errors
