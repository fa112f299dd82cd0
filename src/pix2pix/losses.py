"""Adversarial losses. Each takes the discriminator's logits and returns a scalar.

``d_loss(real, fake)`` is the discriminator's loss, halved as in the paper ("we divide the objective by 2
while optimizing D"); ``g_loss(fake)`` is the generator's adversarial term. For ``vanilla`` the G term is
the non-saturating one, -log D(x, G(x)), as the paper recommends.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import Pix2PixError


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _mse(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.mse_loss(logits, torch.full_like(logits, target))


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if kind == "vanilla":
        return 0.5 * (_bce(real, 1.0) + _bce(fake, 0.0))
    if kind == "lsgan":
        return 0.5 * (_mse(real, 1.0) + _mse(fake, 0.0))
    if kind == "hinge":
        return 0.5 * (F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())
    if kind == "wgangp":  # the critic's Wasserstein estimate; the gradient penalty is added by the caller
        return 0.5 * (fake.mean() - real.mean())
    raise Pix2PixError(f"unknown --gan-loss '{kind}'; choose from vanilla, lsgan, hinge, wgangp")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    if kind == "vanilla":
        return _bce(fake, 1.0)
    if kind == "lsgan":
        return _mse(fake, 1.0)
    if kind in ("hinge", "wgangp"):
        return -fake.mean()
    raise Pix2PixError(f"unknown --gan-loss '{kind}'; choose from vanilla, lsgan, hinge, wgangp")


def gradient_penalty(D: nn.Module, cond: torch.Tensor | None, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad_x D(x)||_2 - 1)^2] on random interpolates of real and fake
    outputs; the condition (the input image, if any) is kept as it is."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = D(mixed if cond is None else torch.cat([cond, mixed], 1))
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
