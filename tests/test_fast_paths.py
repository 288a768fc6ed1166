"""Every fast path computes what the plain model computes."""
import pytest
import torch
import torch.nn as nn

from regnet_backbone import RegNetBackbone


def _randomised(arch='regnety_200mf', **kwargs):
    """A model with random weights and random BN statistics (so folding BN is not trivial)."""
    torch.manual_seed(0)
    model = RegNetBackbone(arch, zero_init_residual=False, **kwargs)
    model.init_weights()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


@pytest.mark.parametrize('arch', ['regnetx_200mf', 'regnety_200mf'])
def test_deploy_mode_equals_eval_mode(arch):
    model = _randomised(arch).eval()
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        expected = model(x)
        fused = model.switch_to_deploy()
        got = fused(x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert all(m.bias is not None for m in fused.modules() if isinstance(m, nn.Conv2d))
    for a, b in zip(expected, got):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


def test_deploy_mode_refuses_training():
    model = _randomised().switch_to_deploy()
    with pytest.raises(RuntimeError, match='deploy mode'):
        model.train()
    model.eval()  # still allowed


def test_deploy_mode_needs_batchnorm():
    model = RegNetBackbone('regnetx_200mf', norm_cfg=dict(type='GN', num_groups=8))
    with pytest.raises(TypeError, match='folds BatchNorm only'):
        model.switch_to_deploy()


def test_channels_last_same_outputs_and_gradients():
    # float64, so that only a real difference (not float reordering magnified by training-mode
    # BN over few samples) can fail the comparison.
    plain = _randomised().double()
    fast = RegNetBackbone('regnety_200mf', zero_init_residual=False, channels_last=True).double()
    fast.load_state_dict(plain.state_dict())
    assert fast.layer2[0].conv2.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    results = []
    for model in (plain, fast):
        model.train()
        outs = model(x)
        sum(o.square().mean() for o in outs).backward()
        results.append((outs, [p.grad for p in model.parameters()]))
    assert results[1][0][0].is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(results[0][0], results[1][0]):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9)


def test_channels_last_deploy():
    model = _randomised(channels_last=True).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        got = model.switch_to_deploy()(x)
    for a, b in zip(expected, got):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


def test_compiles_without_graph_breaks():
    import torch._dynamo as dynamo
    model = _randomised().eval()
    x = torch.randn(1, 3, 64, 64)
    dynamo.reset()
    explanation = dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0
    assert explanation.graph_count == 1
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    with torch.no_grad():
        for a, b in zip(model(x), compiled(x)):
            torch.testing.assert_close(b, a)


def test_compiled_training_step_matches_eager():
    model = _randomised('regnetx_200mf')
    twin = _randomised('regnetx_200mf')
    compiled = torch.compile(twin, backend='aot_eager', fullgraph=True)
    x = torch.randn(2, 3, 32, 32)
    for m in (model, compiled):
        m.train()
        sum(o.mean() for o in m(x)).backward()
    for (name, a), b in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_bf16_autocast_on_cpu():
    model = _randomised().eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            got = model(x)
    for a, b in zip(expected, got):
        assert b.dtype == torch.bfloat16
        # bf16 keeps 8 bits of mantissa: compare relative to the feature scale.
        err = (b.float() - a).abs().max() / a.abs().max()
        assert err < 0.05


def test_with_cp_lowers_activation_memory():
    # Saved activations are what checkpointing removes: count the bytes autograd keeps.
    def saved_bytes(with_cp):
        model = RegNetBackbone('regnetx_200mf', with_cp=with_cp).train()
        total = [0]

        def pack(t):
            total[0] += t.numel() * t.element_size()
            return t

        x = torch.randn(2, 3, 128, 128, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x)
        return total[0]

    assert saved_bytes(True) < 0.6 * saved_bytes(False)
