"""Normalization layers: agreement with torch, reused statistics, GDN maths and robustness."""

import pytest
import torch
from torch import nn

from normscope import norms
from normscope.model.layers.batchnorm import BatchNorm
from normscope.model.layers.gdn import GDN
from normscope.model.layers.instancenorm import InstanceNorm
from normscope.model.modules import norm_layer_class

ATOL = 1e-5


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _x(*shape):
    return torch.randn(*shape) * 2 + 0.5


def test_table_names_the_layer_classes():
    assert {k: norm_layer_class(n) for k, n in norms.NORMS.items() if k in ("bn", "in", "gdn")} == {
        "bn": BatchNorm,
        "in": InstanceNorm,
        "gdn": GDN,
    }


@pytest.mark.parametrize("short", list(norms.NORMS))
def test_layer_statistics_follow_the_table(short):
    """Every layer returns its table entry's statistics, in order, with the table's sizes,
    and has the table's parameter count (Keras convention)."""
    norm = norms.NORMS[short]
    channels = 6
    options = norm.resolve({})
    layer = norm_layer_class(norm).from_options(channels, options)
    _, stats = layer.train()(_x(3, channels, 7, 7))
    assert [name for name, _ in stats] == [s.name for s in norm.stats]
    assert [tuple(t.shape) for _, t in stats] == [(3, size) for size in norm.stat_sizes(channels, options)]
    trainable = sum(p.numel() for p in layer.parameters() if p.requires_grad)
    fixed = sum(p.numel() for p in layer.parameters() if not p.requires_grad) + sum(
        b.numel() for n, b in layer.named_buffers() if not n.endswith("num_batches_tracked")
    )
    assert (trainable, fixed) == norm.params(channels, options)


def _randomize_affine(layer):
    with torch.no_grad():
        layer.weight.uniform_(0.5, 1.5)
        layer.bias.uniform_(-0.5, 0.5)


@pytest.mark.parametrize("shape,ref_cls", [((6, 4, 5, 5), nn.BatchNorm2d), ((6, 4), nn.BatchNorm1d)])
def test_batchnorm_matches_torch(shape, ref_cls):
    bn = BatchNorm(4)
    assert bn.eps == 1e-3 and bn.momentum == 0.01
    ref = ref_cls(4, eps=1e-3, momentum=0.01)
    _randomize_affine(bn)
    ref.load_state_dict(bn.state_dict())
    for _ in range(3):  # train: outputs and running-stat updates
        x = _x(*shape)
        y, stats = bn(x)
        torch.testing.assert_close(y, ref(x), atol=ATOL, rtol=0)
        dims = (0,) if len(shape) == 2 else (0, 2, 3)
        assert [s for s, _ in stats] == ["mean", "var"]
        for (_, t), want in zip(stats, (x.mean(dims), x.var(dims, unbiased=False))):
            assert t.shape == (shape[0], 4)
            torch.testing.assert_close(t, want.expand(shape[0], 4), atol=ATOL, rtol=0)
    torch.testing.assert_close(bn.running_mean, ref.running_mean, atol=ATOL, rtol=0)
    torch.testing.assert_close(bn.running_var, ref.running_var, atol=ATOL, rtol=0)
    assert int(bn.num_batches_tracked) == 3
    assert not torch.allclose(bn.running_mean, torch.zeros(4))  # the stats did move

    bn.eval(), ref.eval()
    x = _x(*shape)
    y, stats = bn(x)
    torch.testing.assert_close(y, ref(x), atol=ATOL, rtol=0)
    d = dict(stats)
    assert torch.equal(d["mean"], bn.running_mean.expand(shape[0], 4))
    assert torch.equal(d["var"], bn.running_var.expand(shape[0], 4))


def test_batchnorm_rejects_3d():
    with pytest.raises(ValueError):
        BatchNorm(4)(torch.randn(2, 4, 5))


def test_instancenorm_matches_torch():
    norm = InstanceNorm(3)
    assert norm.eps == 1e-3
    assert sorted(n for n, _ in norm.named_parameters()) == ["bias", "weight"]
    assert len(list(norm.buffers())) == 0
    _randomize_affine(norm)
    ref = nn.InstanceNorm2d(3, eps=1e-3, affine=True)
    ref.load_state_dict(norm.state_dict())
    x = _x(2, 3, 6, 7)
    for mode in (True, False):
        norm.train(mode), ref.train(mode)
        y, stats = norm(x)
        torch.testing.assert_close(y, ref(x), atol=ATOL, rtol=0)
        d = dict(stats)
        assert list(d) == ["mean", "var"]
        torch.testing.assert_close(d["mean"], x.mean((2, 3)), atol=ATOL, rtol=0)
        torch.testing.assert_close(d["var"], x.var((2, 3), unbiased=False), atol=ATOL, rtol=0)


def test_gdn_k1_matches_direct_formula():
    c = 4
    gdn = GDN(c, kernel_size=1)
    gamma = torch.rand(c, c) * 0.5
    beta = torch.rand(c) + 0.2
    gdn.set_gamma(gamma)
    gdn.set_beta(beta)
    torch.testing.assert_close(gdn.gamma.view(c, c), gamma, atol=1e-6, rtol=0)
    torch.testing.assert_close(gdn.beta, beta, atol=1e-6, rtol=0)
    x = _x(2, c, 5, 6)
    y, stats = gdn(x)
    denom = torch.sqrt(beta.view(1, c, 1, 1) + torch.einsum("ij,bjhw->bihw", gamma, x**2))
    torch.testing.assert_close(y, x / denom, atol=ATOL, rtol=1e-5)
    ((suffix, d),) = stats
    assert suffix == "denominator" and d.shape == (2, c)
    torch.testing.assert_close(d, denom.mean((2, 3)), atol=ATOL, rtol=1e-5)


def test_gdn_init_and_k3_keeps_size():
    gdn = GDN(3, kernel_size=3)
    torch.testing.assert_close(gdn.beta, torch.ones(3))
    gamma = gdn.gamma
    assert gamma.shape == (3, 3, 3, 3) and (gamma >= 0).all()
    torch.testing.assert_close(gamma[:, :, 1, 1], 0.1 * torch.eye(3))
    assert gamma.sum().item() == pytest.approx(0.3, abs=1e-6)
    x = _x(2, 3, 7, 5).contiguous(memory_format=torch.channels_last)
    y, stats = gdn(x)
    assert y.shape == x.shape and stats[0][1].shape == (2, 3)
    # at init only the centre tap of i -> i is active: y = x / sqrt(1 + 0.1 x^2)
    torch.testing.assert_close(y, x / torch.sqrt(1 + 0.1 * x**2), atol=ATOL, rtol=1e-5)


def test_gdn_denominator_in_float32_under_autocast():
    gdn = GDN(8, kernel_size=3)
    gdn.set_gamma(torch.rand(8, 8, 3, 3) * 0.1)
    x = _x(2, 8, 6, 6)
    y, stats = gdn(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y_ac, stats_ac = gdn(x)
    assert y_ac.dtype == torch.float32 and stats_ac[0][1].dtype == torch.float32
    # a bf16 convolution would be off by ~1e-2
    torch.testing.assert_close(y_ac, y, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(stats_ac[0][1], stats[0][1], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("k,c", [(1, 3), (3, 6), (5, 2)])
def test_gdn_parameter_counts(k, c):
    gdn = GDN(c, kernel_size=k)
    total = sum(p.numel() for p in gdn.parameters()) + sum(b.numel() for b in gdn.buffers())
    assert total == k * k * c * c + 3 * c
    trainable = sum(p.numel() for p in gdn.parameters() if p.requires_grad)
    assert trainable == k * k * c * c + c
    assert not gdn.alpha.requires_grad and not gdn.epsilon.requires_grad
    torch.testing.assert_close(gdn.alpha, torch.full((c,), 2.0))
    torch.testing.assert_close(gdn.epsilon, torch.full((c,), 0.5))
    free = GDN(c, kernel_size=k, trainable_exponents=True)
    assert sum(p.numel() for p in free.parameters() if p.requires_grad) == total


@pytest.mark.parametrize("trainable", [False, True])
@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("value", [0.0, 1e-30, 1e15, 1e30])
def test_gdn_finite_forward_backward(value, autocast, trainable):
    gdn = GDN(3, kernel_size=3, trainable_exponents=trainable)
    x = torch.full((2, 3, 4, 4), value)
    x[0, 0, 0, 0] = -value  # both signs
    x.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        xin = x.to(torch.bfloat16) if autocast else x
        y, stats = gdn(xin)
        assert stats[0][1].dtype == torch.float32
        loss = y.float().square().sum() + stats[0][1].sum()
    loss.backward()
    assert torch.isfinite(y).all() and torch.isfinite(stats[0][1]).all()
    assert torch.isfinite(x.grad).all()
    for p in gdn.parameters():
        if p.requires_grad:
            assert torch.isfinite(p.grad).all()


def test_gdn_stays_positive_under_large_steps():
    gdn = GDN(3, kernel_size=3)
    opt = torch.optim.SGD(gdn.parameters(), lr=100.0)
    for _ in range(5):
        opt.zero_grad()
        (gdn.gamma.sum() + gdn.beta.sum()).backward()  # pushes both towards -inf
        opt.step()
        assert (gdn.gamma >= 0).all() and (gdn.beta > 0).all()
    assert gdn.gamma.max() < 1e-6  # they were indeed pushed down to their floors


def test_gdn_bound_lets_gradients_push_up():
    gdn = GDN(2, kernel_size=1)
    # off-diagonal gamma starts at exactly 0 and can still grow
    assert gdn.gamma[0, 1].item() == 0.0
    opt = torch.optim.Adam([gdn.gamma_stored], lr=0.01)
    for _ in range(3):
        opt.zero_grad()
        (-gdn.gamma.sum()).backward()
        opt.step()
    assert gdn.gamma[0, 1].item() > 1e-5
    # stored values below the bound: upward gradients pass, downward ones are blocked
    with torch.no_grad():
        gdn.gamma_stored.fill_(-1.0)
    assert (gdn.gamma == 0).all()
    for sign, expect_zero in ((1.0, True), (-1.0, False)):
        gdn.gamma_stored.grad = None
        (sign * gdn.gamma.sum()).backward()
        assert (gdn.gamma_stored.grad == 0).all() == expect_zero


def test_gdn_trained_exponents_stay_positive():
    """Steps that push alpha and epsilon far below zero leave the effective exponents at
    their positive floor; the forward pass stays finite and an upward gradient still moves
    them back."""
    gdn = GDN(3, kernel_size=1, trainable_exponents=True)
    opt = torch.optim.SGD([gdn.alpha, gdn.epsilon], lr=10.0)
    x = _x(2, 3, 4, 4)
    for _ in range(4):
        opt.zero_grad()
        alpha, epsilon = gdn.exponents
        (alpha.sum() + epsilon.sum()).backward()  # the gradient pushes both down
        opt.step()
    assert gdn.alpha.min() < 0 and gdn.epsilon.min() < 0  # the stored values did go negative
    alpha, epsilon = gdn.exponents
    torch.testing.assert_close(alpha, torch.full((3,), 1e-3))
    torch.testing.assert_close(epsilon, torch.full((3,), 1e-3))
    y, stats = gdn(x)
    # epsilon at 1e-3: D = (beta + gamma |z|^alpha)^0.001, within 1% of 1 for these inputs
    assert torch.isfinite(y).all() and torch.allclose(stats[0][1], torch.ones(2, 3), atol=0.01)
    gdn.zero_grad()
    (-gdn.exponents[0].sum()).backward()
    assert (gdn.alpha.grad < 0).all()  # an upward push passes the floor


def test_layers_compile_fullgraph():
    x = _x(2, 4, 6, 6).contiguous(memory_format=torch.channels_last)
    for layer in (BatchNorm(4), InstanceNorm(4), GDN(4, 3, trainable_exponents=True)):
        compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
        y, stats = compiled(x)
        y.sum().backward()
        layer.eval()
        y_eval, _ = layer(x)
        torch.testing.assert_close(compiled(x)[0], y_eval)
        assert stats[0][1].shape == (2, 4)
