"""``RegNetBackbone``: an AnyNetX/RegNet network as a multi-scale OpenMMLab backbone."""
import math
import warnings
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from ..design.presets import resolve_arch
from ..design.space import AnyNetSpec
from ..errors import ArchitectureError
from .blocks import Stem, XBlock
from .compat import MMDET_FIXED, current_scope, scope_defaults, stage_dcn, stage_plugins

#: The arch of a config that names none.
DEFAULT_ARCH = 'regnetx_3.2gf'
#: The colour orders ``in_channel_order`` may declare.
CHANNEL_ORDERS = ('RGB', 'BGR')
#: The registered weight initializer that ``type='Pretrained'`` entries become.
PRETRAINED_INIT = 'RegNetPretrained'


def _normalise_indices(out_indices: Sequence[int], num_stages: int) -> Tuple[int, ...]:
    if isinstance(out_indices, int):
        out_indices = (out_indices, )
    result = []
    for index in out_indices:
        if not isinstance(index, int) or not -num_stages <= index < num_stages:
            raise ArchitectureError(
                f'out_indices {tuple(out_indices)} out of range: this arch has '
                f'{num_stages} stages, so each index must be in [0, {num_stages}) '
                f'(or negative from the end).')
        result.append(index % num_stages)
    if len(set(result)) != len(result) or result != sorted(result):
        raise ArchitectureError(f'out_indices {tuple(out_indices)} must be increasing and unique.')
    return tuple(result)


@MODELS.register_module()
class RegNetBackbone(BaseModule):
    """RegNetX / RegNetY (Radosavovic et al., CVPR 2020) for detection and segmentation.

    Args:
        arch: a preset name (``'regnetx_3.2gf'``, ``'regnety_1.6gf'``, ... see
            ``regnet_backbone.PRESETS``), a dict of RegNet parameters (``w0, wa, wm, depth,
            group_width, bottleneck_ratio, se_ratio``; mmdet's ``group_w, bot_mul`` accepted)
            or a dict of AnyNet stage lists (``depths, widths, group_widths, ...``).
        in_channels: input image channels.
        stem_channels: width of the 3x3 stride-2 stem (32 in every published model).
        strides: per-stage stride of the first block (default 2 everywhere).
        dilations: per-stage dilation of the 3x3 convs (use stride 1 + dilation 2/4 in the last
            stages for output stride 16/8, as segmentation does).
        out_indices: stages whose outputs ``forward`` returns (0-based). None (default): (0, 1,
            2, 3), or (3, ) under mmpretrain's scope, as mmpretrain's ``RegNet``.
        frozen_stages: freeze the stem and stages 1..k (-1: nothing, 0: the stem only).
        conv_cfg, norm_cfg: OpenMMLab layer configs (BN, SyncBN, GN, ...).
        norm_eval: keep every BN in eval mode during training (frozen statistics). None
            (default): True, like mmdet's ``RegNet`` and ``ResNet``, or False under mmpretrain's
            scope, as mmpretrain's ``RegNet``. Set False to train BN statistics (from scratch, or
            with large batches).
        with_cp: gradient checkpointing per block (less memory, same results, slower).
        zero_init_residual: start each block's last norm at zero (identity blocks).
        channels_last: keep weights and activations in NHWC memory format (faster convs on
            CPUs and tensor cores; same results). Off by default.
        style: mmdet's ``'pytorch'`` (stride in the 3x3 conv), the only style a RegNet has;
            accepted so that mmdet ``RegNet`` configs migrate unchanged.
        in_channel_order: the colour order the first conv expects, ``'RGB'`` or ``'BGR'``.
            Pretrained weights are converted to it when they load. None (default, as with
            mmdet's ``RegNet``): weights keep their own order (pycls and mmdet files: BGR;
            torchvision, timm: RGB; converted files: what their ``meta`` says), and
            ``expected_channel_order`` reports it. Our configs declare ``'RGB'``.
        dcn, stage_with_dcn: mmdet's deformable 3x3 convs: an mmcv conv config (``DCN``,
            ``DCNv2``) used for the 3x3 group conv of every block of the stages flagged in
            ``stage_with_dcn``. ``fallback_on_stride`` must be False (as in mmdet's configs).
        plugins: mmdet's ResNet plugins, ``[dict(cfg=dict(type='ContextBlock', ...),
            position='after_conv3', stages=(False, True, True, True)), ...]``; positions
            ``after_conv1``, ``after_conv2``, ``after_conv3`` (after the norm; after SE in a
            RegNetY), in every block of the chosen stages.
        pretrained: deprecated (as in mmdet): ``init_cfg=dict(type='Pretrained', ...)``.
        base_channels, deep_stem, avg_down: mmdet's ResNet arguments, accepted at mmdet's
            defaults (32, False, False) only; a RegNet has no such variants.
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH)`` loads pretrained weights,
            strictly, through the registered ``RegNetPretrained`` initializer; pycls,
            torchvision, timm and mmdet files are converted on the fly. The dict may sit in a
            list (OpenMMLab's list form) and may carry ``prefix='backbone.'`` (take the
            backbone out of a detector's or classifier's checkpoint). ``strict=False`` in it is
            the explicit opt-in for partial loading.

    Defaults follow mmdet 3.x's ``RegNet`` wherever it has the same argument (``in_channels=3``,
    ``stem_channels=32``, strides 2 and dilations 1, ``out_indices=(0, 1, 2, 3)``,
    ``frozen_stages=-1``, ``norm_cfg=BN``, ``norm_eval=True``, ``with_cp=False``,
    ``zero_init_residual=True``, Kaiming fan-out init), and mmpretrain 1.x's where its differ
    (``out_indices``, ``norm_eval``) under mmpretrain's scope: mmengine's default scope, which
    an mmpretrain config's Runner sets and whose registry builds the model
    (:data:`~.compat.SCOPE_DEFAULTS`); ``arch`` has a default here.

    Shapes: (N, in_channels, H, W) -> tuple of (N, out_channels[k], H / s_k, W / s_k) with
    s_k = ``out_strides[k]`` (4, 8, 16, 32 by default; sizes are rounded up).
    """

    def __init__(self,
                 arch: Union[str, dict, AnyNetSpec] = DEFAULT_ARCH,
                 in_channels: int = 3,
                 stem_channels: int = 32,
                 strides: Optional[Sequence[int]] = None,
                 dilations: Optional[Sequence[int]] = None,
                 out_indices: Optional[Sequence[int]] = None,
                 frozen_stages: int = -1,
                 conv_cfg: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 norm_eval: Optional[bool] = None,
                 with_cp: bool = False,
                 zero_init_residual: bool = True,
                 channels_last: bool = False,
                 style: str = 'pytorch',
                 in_channel_order: Optional[str] = None,
                 dcn: Optional[dict] = None,
                 stage_with_dcn: Sequence[bool] = (False, False, False, False),
                 plugins: Optional[Sequence[dict]] = None,
                 pretrained: Optional[str] = None,
                 base_channels: int = 32,
                 deep_stem: bool = False,
                 avg_down: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None):
        if pretrained is not None:
            if init_cfg is not None:
                raise ArchitectureError('init_cfg and pretrained cannot be given together; keep '
                                        "init_cfg=dict(type='Pretrained', checkpoint=...).")
            if not isinstance(pretrained, str):
                raise TypeError(f'pretrained must be a str or None, got {type(pretrained)}.')
            warnings.warn('DeprecationWarning: pretrained is deprecated, please use "init_cfg" '
                          'instead')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)
        if style != 'pytorch':
            raise ArchitectureError(
                f"style={style!r}: a RegNet block strides in its 3x3 conv, which is "
                f"mmdet's 'pytorch' style; drop style or set style='pytorch'.")
        given = dict(base_channels=base_channels, deep_stem=deep_stem, avg_down=avg_down)
        for name, default in MMDET_FIXED.items():
            if given[name] != default:
                raise ArchitectureError(
                    f'{name}={given[name]!r}: a RegNet has no such variant (mmdet\'s '
                    f'RegNet ignores or forbids it too); drop {name} or set it to '
                    f'{default!r}.')
        if in_channel_order is not None and in_channel_order not in CHANNEL_ORDERS:
            raise ArchitectureError(
                f'in_channel_order={in_channel_order!r}: use \'RGB\' or \'BGR\' '
                f'(or None to keep the pretrained weights\' own order).')
        if in_channel_order is not None and in_channels != 3:
            raise ArchitectureError(
                f'in_channel_order={in_channel_order!r} needs 3 input channels, '
                f'not in_channels={in_channels}; drop in_channel_order.')
        self._pretrained_cfg()  # malformed init_cfg fails at build time, not at init_weights
        defaults = scope_defaults(current_scope())
        out_indices = defaults['out_indices'] if out_indices is None else out_indices
        norm_eval = defaults['norm_eval'] if norm_eval is None else norm_eval
        self.arch = arch
        self.spec = spec = resolve_arch(arch)
        n = spec.num_stages
        strides = tuple(strides) if strides is not None else (2, ) * n
        dilations = tuple(dilations) if dilations is not None else (1, ) * n
        if len(strides) != n or len(dilations) != n:
            raise ArchitectureError(
                f'strides {strides} and dilations {dilations} must each have one '
                f'entry per stage; this arch has {n} stages.')
        if any(s < 1 for s in strides) or any(d < 1 for d in dilations):
            raise ArchitectureError(f'strides {strides} and dilations {dilations} must be >= 1.')
        if not isinstance(frozen_stages, int) or not -1 <= frozen_stages <= n:
            raise ArchitectureError(
                f'frozen_stages={frozen_stages!r} out of range: use -1 (nothing), '
                f'0 (the stem) up to {n} (stem and all {n} stages).')
        self.strides, self.dilations = strides, dilations
        self.out_indices = _normalise_indices(out_indices, n)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.zero_init_residual = zero_init_residual
        self.channels_last = channels_last
        self.deploy = False
        self.in_channel_order = in_channel_order
        #: The order the loaded weights' first conv expects (set when pretrained weights load).
        self.weights_channel_order: Optional[str] = None
        dcn_cfgs = stage_dcn(dcn, stage_with_dcn, n, conv_cfg)
        plugin_cfgs = [stage_plugins(plugins, i, n) for i in range(n)]

        self.stem = Stem(in_channels, stem_channels, conv_cfg, norm_cfg)
        self.layer_names = []
        w_in = stem_channels
        for i in range(n):
            blocks = []
            for j in range(spec.depths[i]):
                blocks.append(
                    XBlock(w_in, spec.widths[i], spec.bottleneck_widths[i], spec.group_widths[i],
                           stride=strides[i] if j == 0 else 1, dilation=dilations[i],
                           se_channels=int(round(w_in * spec.se_ratio)), conv_cfg=conv_cfg,
                           norm_cfg=norm_cfg, with_cp=with_cp, dcn=dcn_cfgs[i],
                           plugins=plugin_cfgs[i]))
                w_in = spec.widths[i]
            name = f'layer{i + 1}'
            self.add_module(name, nn.Sequential(*blocks))
            self.layer_names.append(name)
        self._freeze_stages()
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @property
    def expected_channel_order(self) -> Optional[str]:
        """The colour order the first conv expects: the declared ``in_channel_order``, else
        the order of the pretrained weights loaded into it, else None (unknown: random
        weights, or weights whose file did not say)."""
        return self.in_channel_order or self.weights_channel_order

    @property
    def out_channels(self) -> Tuple[int, ...]:
        """Channels of each returned feature map (what FPN/UperNet ``in_channels`` must be)."""
        return tuple(self.spec.widths[i] for i in self.out_indices)

    @property
    def out_strides(self) -> Tuple[int, ...]:
        """Output stride of each returned feature map relative to the input."""
        total, result = 2, []
        for s in self.strides:
            total *= s
            result.append(total)
        return tuple(result[i] for i in self.out_indices)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem(x)
        outs = []
        for i, name in enumerate(self.layer_names):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    # --- the OpenMMLab training contract -------------------------------------------------------
    def _frozen_modules(self):
        if self.frozen_stages >= 0:
            yield self.stem
        for name in self.layer_names[:max(self.frozen_stages, 0)]:
            yield getattr(self, name)

    def _freeze_stages(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'RegNetBackbone':
        """Switch mode; frozen stages and (with ``norm_eval``) every BN stay in eval mode."""
        if mode and self.deploy:
            raise RuntimeError('RegNetBackbone is in deploy mode (BatchNorm folded into the convs) '
                               'and cannot train; build a new model from the unfused weights.')
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    # --- inference fast path ----------------------------------------------------------------------
    def switch_to_deploy(self) -> 'RegNetBackbone':
        """Fold every BatchNorm into its conv and switch to eval mode for good (inference only).

        The outputs equal the eval-mode outputs of the unfused model; ``train()`` then raises.
        The state dict changes (convs gain biases, norms disappear), so load weights first.
        """
        self.eval()
        for module in self.modules():
            if hasattr(module, 'fuse') and module is not self:
                module.fuse()
        self.deploy = True
        return self

    # --- initialisation -------------------------------------------------------------------------
    def _init_cfgs(self) -> list:
        cfg = self.init_cfg
        if cfg is None:
            return []
        return list(cfg) if isinstance(cfg, (list, tuple)) else [cfg]

    def _pretrained_cfg(self) -> Optional[dict]:
        """The ``Pretrained`` entry of ``init_cfg`` (dict or list form), or None."""
        found = [c for c in self._init_cfgs() if isinstance(c, dict) and
                 c.get('type') == 'Pretrained']
        if len(found) > 1:
            raise ArchitectureError(f'init_cfg has {len(found)} Pretrained entries; give one.')
        if found and not found[0].get('checkpoint'):
            raise ArchitectureError("init_cfg type='Pretrained' needs checkpoint=PATH.")
        return found[0] if found else None

    def init_weights(self) -> None:
        """pycls's initialisation (mmdet's Kaiming fan-out, BN 1/0), then the weights of an
        ``init_cfg`` ``Pretrained`` entry through the registered ``RegNetPretrained``
        initializer (strict unless it says ``strict=False``; first conv in
        ``in_channel_order`` when one is declared)."""
        from mmengine.model import initialize
        pretrained = self._pretrained_cfg()
        others = [c for c in self._init_cfgs() if c is not pretrained]
        if others:
            initialize(self, others)
        else:
            self._default_init()
        if pretrained is not None:
            entry = {k: v for k, v in pretrained.items() if k != 'type'}
            initialize(self, dict(type=PRETRAINED_INIT, **entry))
        self._is_init = True

    def _default_init(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (_BatchNorm, nn.GroupNorm)) and module.affine:
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if self.zero_init_residual:
            for module in self.modules():
                if isinstance(module, XBlock) and getattr(module.norm3, 'weight', None) is not None:
                    nn.init.zeros_(module.norm3.weight)
        for module in self.modules():
            if isinstance(module, XBlock):
                offset = getattr(module.conv2, 'conv_offset', None)
                if offset is not None:  # mmcv's DCN starts as a plain conv: zero offsets
                    nn.init.zeros_(offset.weight)
                    nn.init.zeros_(offset.bias)
                for plugin in module.plugins():  # plugins keep their own (identity-like) init
                    for init in ('init_weights', 'reset_parameters'):
                        if callable(getattr(plugin, init, None)):
                            getattr(plugin, init)()
                            break
