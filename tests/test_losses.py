"""Adversarial losses against values worked out by hand, and a WGAN-GP gradient penalty that really works."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pix2pix.config import DiscriminatorConfig
from pix2pix.errors import Pix2PixError
from pix2pix.training.losses import d_loss, g_loss, gradient_penalty
from pix2pix.networks import build_discriminator, init_weights

LOG2 = math.log(2.0)


def t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).reshape(1, 1, 1, -1)


def close(value: torch.Tensor, expected: float, tol: float = 1e-6) -> bool:
    assert value.ndim == 0, "a loss is a scalar"
    return abs(value.item() - expected) < tol


# ---------------------------------------------------------------------------------------- vanilla


def test_vanilla_d_loss_of_a_perfect_discriminator_is_zero():
    assert close(d_loss("vanilla", t(30.0, 25.0), t(-30.0, -25.0)), 0.0)


def test_vanilla_d_loss_at_zero_logits_is_log2():
    # 0.5 * (-log sigmoid(0) - log(1 - sigmoid(0))) = 0.5 * (log 2 + log 2)
    assert close(d_loss("vanilla", torch.zeros(2, 1, 3, 3), torch.zeros(2, 1, 3, 3)), LOG2)


def test_vanilla_d_loss_by_hand():
    real, fake = t(1.0, -2.0), t(0.5, 3.0)
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    # BCE(real, 1) = softplus(-r); BCE(fake, 0) = softplus(f); each averaged, then halved.
    expected = 0.5 * ((softplus(-1.0) + softplus(2.0)) / 2 + (softplus(0.5) + softplus(3.0)) / 2)
    assert close(d_loss("vanilla", real, fake), expected)


def test_vanilla_d_loss_of_a_fooled_discriminator_is_large():
    assert d_loss("vanilla", t(-20.0), t(20.0)).item() == pytest.approx(20.0, abs=1e-6)


def test_vanilla_g_loss_is_non_saturating():
    assert close(g_loss("vanilla", t(0.0, 0.0)), LOG2)
    assert close(g_loss("vanilla", t(30.0)), 0.0)
    # -log sigmoid(-4) = softplus(4): grows linearly when D rejects the fake (no vanishing gradient).
    assert close(g_loss("vanilla", t(-4.0)), math.log1p(math.exp(4.0)), 1e-5)
    fake = t(-8.0).requires_grad_(True)
    g_loss("vanilla", fake).backward()
    assert fake.grad.item() < -0.99  # d/dx softplus(-x) = -sigmoid(-x) ~ -1


# ---------------------------------------------------------------------------------------- lsgan


def test_lsgan_losses_by_hand():
    # 0.5 * (mean((r - 1)^2) + mean(f^2)) = 0.5 * (((3-1)^2 + (1-1)^2)/2 + (0.5^2 + (-1)^2)/2)
    assert close(d_loss("lsgan", t(3.0, 1.0), t(0.5, -1.0)), 0.5 * ((4.0 + 0.0) / 2 + (0.25 + 1.0) / 2))
    assert close(d_loss("lsgan", t(1.0, 1.0), t(0.0, 0.0)), 0.0)
    # mean((f - 1)^2)
    assert close(g_loss("lsgan", t(3.0, 0.0)), (4.0 + 1.0) / 2)
    assert close(g_loss("lsgan", t(1.0)), 0.0)


# ---------------------------------------------------------------------------------------- hinge


def test_hinge_losses_by_hand():
    # 0.5 * (mean(relu(1 - r)) + mean(relu(1 + f)))
    #     = 0.5 * ((0 + 0.5) / 2 + (0 + 1.5) / 2) = 0.5
    assert close(d_loss("hinge", t(2.0, 0.5), t(-2.0, 0.5)), 0.5)
    assert close(d_loss("hinge", t(1.0, 5.0), t(-1.0, -7.0)), 0.0)  # beyond the margins: no loss
    assert close(d_loss("hinge", t(-1.0), t(1.0)), 0.5 * (2.0 + 2.0))
    assert close(g_loss("hinge", t(2.0, -4.0)), 1.0)  # -mean(f)


# ---------------------------------------------------------------------------------------- wgan-gp


def test_wgangp_losses_by_hand():
    # Gulrajani et al.'s critic loss E[D(fake)] - E[D(real)], not halved: the penalty is added on its scale.
    assert close(d_loss("wgangp", t(3.0, 1.0), t(-1.0, 0.0)), -0.5 - 2.0)
    assert close(g_loss("wgangp", t(3.0, 1.0)), -2.0)


@pytest.mark.parametrize("kind", ["vanilla", "lsgan", "hinge", "wgangp"])
def test_d_loss_prefers_a_discriminator_that_tells_real_from_fake(kind):
    good = d_loss(kind, t(2.0, 3.0), t(-2.0, -3.0))
    bad = d_loss(kind, t(-2.0, -3.0), t(2.0, 3.0))
    assert good.item() < bad.item()
    assert g_loss(kind, t(3.0)).item() < g_loss(kind, t(-3.0)).item()


@pytest.mark.parametrize("kind", ["vanilla", "lsgan", "hinge", "wgangp"])
def test_losses_average_over_every_logit(kind):
    """A 30x30 PatchGAN map and a 1x1 map with the same value per patch give the same loss."""
    big_r, big_f = torch.full((2, 1, 30, 30), 0.7), torch.full((2, 1, 30, 30), -0.3)
    assert close(d_loss(kind, big_r, big_f), d_loss(kind, t(0.7), t(-0.3)).item())
    assert close(g_loss(kind, big_f), g_loss(kind, t(-0.3)).item())


@pytest.mark.parametrize("fn", [lambda k: d_loss(k, t(0.0), t(0.0)), lambda k: g_loss(k, t(0.0))],
                         ids=["d_loss", "g_loss"])
@pytest.mark.parametrize("kind", ["bogus", "wgan", "Vanilla", ""])
def test_unknown_loss_name_raises(fn, kind):
    with pytest.raises(Pix2PixError):
        fn(kind)


# ---------------------------------------------------------------------------------------- gradient penalty


class LinearCritic(nn.Module):
    """D(x) = <w, x> per sample: grad_x D = w everywhere, so ||grad|| = ||w restricted to x||."""

    def __init__(self, channels: int, h: int, w: int):
        super().__init__()
        self.w = nn.Parameter(torch.randn(1, channels, h, w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.w).sum((1, 2, 3))


def _critic(cond_channels: int, out_channels: int, norm_of_output_part: float) -> LinearCritic:
    torch.manual_seed(1)
    D = LinearCritic(cond_channels + out_channels, 5, 7)
    with torch.no_grad():
        part = D.w[:, cond_channels:]
        part.mul_(norm_of_output_part / part.norm())
    return D


@pytest.mark.parametrize("conditional", [False, True])
def test_gradient_penalty_is_zero_for_a_unit_gradient_critic(conditional):
    c = 3 if conditional else 0
    D = _critic(c, 3, 1.0)
    real, fake = torch.randn(4, 3, 5, 7), torch.randn(4, 3, 5, 7)
    cond = torch.randn(4, 3, 5, 7) if conditional else None
    gp = gradient_penalty(D, cond, real, fake)
    assert gp.ndim == 0
    assert gp.item() == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize("scale, expected", [(2.0, 1.0), (0.5, 0.25), (4.0, 9.0)])
def test_gradient_penalty_by_hand(scale, expected):
    """||grad|| = scale for every interpolate, so the penalty is (scale - 1)^2 whatever alpha is drawn.
    Only the generated channels count: the condition's part of w (norm unrelated to scale) must not."""
    D = _critic(3, 3, scale)
    gp = gradient_penalty(D, torch.randn(2, 3, 5, 7), torch.randn(2, 3, 5, 7), torch.randn(2, 3, 5, 7))
    assert gp.item() == pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_gives_gradients_to_the_critic():
    D = _critic(3, 3, 2.0)
    w_out = D.w.detach()[:, 3:].clone()
    gp = gradient_penalty(D, torch.randn(2, 3, 5, 7), torch.randn(2, 3, 5, 7), torch.randn(2, 3, 5, 7))
    gp.backward()
    # d/dw (||w_out|| - 1)^2 = 2 (||w_out|| - 1) w_out / ||w_out|| = w_out when ||w_out|| = 2.
    torch.testing.assert_close(D.w.grad[:, 3:], w_out, atol=1e-5, rtol=1e-4)
    assert torch.count_nonzero(D.w.grad[:, :3]) == 0  # the condition is not interpolated


def test_gradient_penalty_trains_a_real_patchgan():
    """On a real conditional PatchGAN the penalty is positive, reaches every conv through the double
    backward, and a few Adam steps on it alone move ||grad|| towards 1."""
    torch.manual_seed(0)
    D = init_weights(build_discriminator(DiscriminatorConfig(arch="patch16", ndf=4, in_channels=6, norm="none")))
    cond, real, fake = torch.randn(2, 3, 32, 32), torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    gp = gradient_penalty(D, cond, real, fake)
    assert gp.item() > 0.01
    gp.backward()
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in convs)

    opt = torch.optim.Adam(D.parameters(), lr=0.01)
    first = None
    for _ in range(30):
        opt.zero_grad()
        torch.manual_seed(1)  # the same interpolates each time
        loss = gradient_penalty(D, cond, real, fake)
        first = loss.item() if first is None else first
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first


def test_gradient_penalty_does_not_touch_inputs():
    D = _critic(0, 3, 2.0)
    real, fake = torch.randn(2, 3, 5, 7), torch.randn(2, 3, 5, 7)
    r0, f0 = real.clone(), fake.clone()
    gradient_penalty(D, None, real, fake)
    assert torch.equal(real, r0) and torch.equal(fake, f0)
    assert not real.requires_grad and not fake.requires_grad


def test_gradient_penalty_leaves_running_statistics_alone():
    """The penalty's extra pass through D must not move batch-norm running statistics (were a batch-norm
    critic ever given to it: the configuration refuses one for wgangp)."""
    torch.manual_seed(0)
    D = build_discriminator(DiscriminatorConfig(arch="patch16", ndf=4, in_channels=6, norm="batch")).train()
    before = {k: v.clone() for k, v in D.state_dict().items()}
    gp = gradient_penalty(D, torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16), torch.randn(2, 3, 16, 16))
    gp.backward()
    assert all(torch.equal(before[k], v) for k, v in D.state_dict().items())
    assert all(m.training for m in D.modules())


def test_layer_norm_critic_normalises_each_sample_on_its_own():
    """Gulrajani et al.'s layer norm: one sample's output does not depend on the others in its batch."""
    torch.manual_seed(0)
    D = init_weights(build_discriminator(DiscriminatorConfig(arch="patch16", ndf=4, in_channels=6, norm="layer")))
    assert any(isinstance(m, nn.GroupNorm) and m.num_groups == 1 for m in D.modules())
    x = torch.randn(3, 6, 32, 32)
    torch.testing.assert_close(D(x)[:1], D(x[:1]), atol=1e-5, rtol=1e-5)


def test_gradient_penalty_of_a_patch_map_is_that_of_its_mean():
    """A PatchGAN critic's value for a sample is the mean of its map (what the loss averages): a map of P
    copies of one linear critic has the penalty of that critic, not of P times it."""
    class Tiled(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x).view(-1, 1, 1, 1).expand(-1, 1, 30, 30)

    D = _critic(3, 3, 2.0)
    args = torch.randn(2, 3, 5, 7), torch.randn(2, 3, 5, 7), torch.randn(2, 3, 5, 7)
    assert gradient_penalty(Tiled(D), *args).item() == pytest.approx(gradient_penalty(D, *args).item(), rel=1e-5)
