"""The AnyNetX design space of Radosavovic et al. (CVPR 2020), in pure Python.

An AnyNetX network is a stem followed by stages; stage ``i`` has a depth ``d_i`` (blocks), a width
``w_i`` (output channels), a bottleneck ratio and a group width ``g_i``. This module holds what to
build (:class:`AnyNetSpec`) and the constraints of the design spaces AnyNetX_A to E. RegNet only
*generates* those lists (:mod:`.regnet`). Nothing here imports torch.
"""
from dataclasses import dataclass, field
from typing import List, Tuple

from ..errors import ArchitectureError

QUANT = 8

#: The ways to round a bottleneck width to a multiple of its group width. ``'pycls'`` is the
#: paper's code (Python ``round``, half to even); ``'torchvision'`` is ``_make_divisible`` (half up,
#: never below 90% of the input), which changes a few torchvision models (see ``*_tv`` presets).
ROUNDINGS = ('pycls', 'torchvision')


@dataclass(frozen=True)
class AnyNetSpec:
    """What to build: per-stage lists of an AnyNetX network (one entry per stage).

    Attributes:
        depths: blocks per stage.
        widths: output channels per stage.
        group_widths: channels per group of each stage's 3x3 conv.
        bottleneck_ratios: bottleneck width / output width (w_b / w), per stage. This is
            pycls's ``BOT_MUL`` and mmdet's ``bot_mul``, the *inverse* of the paper's b = w / w_b:
            the paper's b = 4 is ``bottleneck_ratios`` 0.25 here.
        se_ratio: Squeeze-and-Excitation width as a fraction of the block's input width;
            0 means no SE (RegNetX), 0.25 is RegNetY.
    """
    depths: Tuple[int, ...]
    widths: Tuple[int, ...]
    group_widths: Tuple[int, ...]
    bottleneck_ratios: Tuple[float, ...] = field(default=None)
    se_ratio: float = 0.0

    def __post_init__(self):
        n = len(self.depths)
        ratios = self.bottleneck_ratios
        if ratios is None:
            ratios = (1.0, ) * n
        object.__setattr__(self, 'depths', tuple(int(d) for d in self.depths))
        object.__setattr__(self, 'widths', tuple(int(w) for w in self.widths))
        object.__setattr__(self, 'group_widths', tuple(int(g) for g in self.group_widths))
        object.__setattr__(self, 'bottleneck_ratios', tuple(float(b) for b in ratios))
        validate_anynet(self)

    @property
    def num_stages(self) -> int:
        return len(self.depths)

    @property
    def bottleneck_widths(self) -> Tuple[int, ...]:
        return tuple(int(round(w * b)) for w, b in zip(self.widths, self.bottleneck_ratios))

    @property
    def has_se(self) -> bool:
        return self.se_ratio > 0


def validate_anynet(spec: AnyNetSpec) -> None:
    """Raise ``ValueError`` naming the first broken structural constraint of ``spec``."""
    n = len(spec.depths)
    for name in ('widths', 'group_widths', 'bottleneck_ratios'):
        if len(getattr(spec, name)) != n:
            raise ArchitectureError(
                f'AnyNet {name} has {len(getattr(spec, name))} entries but depths '
                f'has {n}: give one value per stage.')
    if n == 0:
        raise ArchitectureError('AnyNet needs at least one stage.')
    for i, (d, w, g, b) in enumerate(
            zip(spec.depths, spec.widths, spec.group_widths, spec.bottleneck_ratios)):
        if d < 1 or w < 1 or g < 1 or b <= 0:
            raise ArchitectureError(f'stage {i}: depth, width and group width must be >= 1 and the '
                                    f'bottleneck ratio > 0 (got d={d}, w={w}, g={g}, b={b}).')
        w_b = int(round(w * b))
        if w_b % g:
            raise ArchitectureError(
                f'stage {i}: bottleneck width {w_b} (= {w} x {b}) is not a multiple '
                f'of group width {g}; use adjust_widths_groups() first.')
    if not 0 <= spec.se_ratio < 1:
        raise ArchitectureError(f'se_ratio must be in [0, 1), got {spec.se_ratio}.')


# ------------------------------------------------------------------------------------------------
# Design spaces A-E (paper section 3): each returns the list of violated constraints.
# ------------------------------------------------------------------------------------------------
#: The paper's bottleneck ratio b is w / w_b, in {1, 2, 4} (b = 4: a bottleneck four times
#: *narrower* than the block). This package's ``bottleneck_ratio(s)`` (pycls ``BOT_MUL``, mmdet
#: ``bot_mul``) is the inverse, w_b / w, so the paper's set is {1, 0.5, 0.25} here.
PAPER_BOTTLENECKS = (1, 2, 4)
BOTTLENECK_RATIOS = tuple(1 / b for b in PAPER_BOTTLENECKS)
#: Group widths g (channels per group) of AnyNetX: {1, 2, 4, 8, 16, 32}.
GROUP_WIDTHS = (1, 2, 4, 8, 16, 32)
MAX_DEPTH = 16
MAX_WIDTH = 1024
SPACE_NAMES = ('A', 'B', 'C', 'D', 'E')


def paper_bottleneck(bottleneck_ratio: float) -> float:
    """The paper's b = w / w_b of this package's ``bottleneck_ratio`` = w_b / w."""
    return 1 / bottleneck_ratio


def design_space_violations(spec: AnyNetSpec, space: str) -> List[str]:
    """List the constraints of design space ``space`` ('A'..'E', cumulative) that ``spec`` breaks.

    A: the paper's b in {1, 2, 4} (b = w / w_b), which is ``bottleneck_ratios`` (w_b / w) in
    {1, 0.5, 0.25} here; g in {1, 2, 4, ..., 32}; w <= 1024 and a multiple of 8; d <= 16.
    B: A plus one shared b. C: B plus one shared g. D: C plus w_{i+1} >= w_i.
    E: D plus d_{i+1} >= d_i for every stage, the last one included (paper section 3.2: "the
    constraints on w_i and d_i each reduce the design space by 4!", Table 1: D 1.3e13, E 5.5e11).
    So the published RegNets, whose last stage is shallow, are inside RegNet but outside E.

    Returns:
        one message per broken constraint, each starting with the space that adds it ('A: ...').
    """
    space = space.upper() if isinstance(space, str) else space
    if space not in SPACE_NAMES:
        raise ArchitectureError(
            f"design space must be one of 'A', 'B', 'C', 'D', 'E', got {space!r}.")
    errors = []
    for i, (d, w, g, r) in enumerate(
            zip(spec.depths, spec.widths, spec.group_widths, spec.bottleneck_ratios)):
        if r not in BOTTLENECK_RATIOS:
            errors.append(f'A: stage {i} bottleneck ratio w_b/w = {r} not in {{1, 0.5, 0.25}} '
                          f"(the paper's b = w/w_b = {paper_bottleneck(r):g} not in {{1, 2, 4}})")
        if g not in GROUP_WIDTHS:
            errors.append(f'A: stage {i} group width {g} not in {{1, 2, 4, ..., 32}}')
        if w > MAX_WIDTH or w % QUANT:
            errors.append(f'A: stage {i} width {w} not a multiple of 8 up to 1024')
        if d > MAX_DEPTH:
            errors.append(f'A: stage {i} depth {d} > 16')
    if space >= 'B' and len(set(spec.bottleneck_ratios)) > 1:
        errors.append(f'B: bottleneck ratios {spec.bottleneck_ratios} are not shared')
    if space >= 'C' and len(set(spec.group_widths)) > 1:
        errors.append(f'C: group widths {spec.group_widths} are not shared')
    if space >= 'D' and any(a > b for a, b in zip(spec.widths, spec.widths[1:])):
        errors.append(f'D: widths {spec.widths} decrease')
    if space >= 'E' and any(a > b for a, b in zip(spec.depths, spec.depths[1:])):
        errors.append(f'E: depths {spec.depths} decrease')
    return errors


def in_design_space(spec: AnyNetSpec, space: str) -> bool:
    """True when ``spec`` satisfies every constraint of design space ``space`` ('A'..'E')."""
    return not design_space_violations(spec, space)
