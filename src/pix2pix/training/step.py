"""The paper's training step as a plain function, and its learning rate as a function of the step.

Objective (Isola et al., eq. 4):  G* = arg min_G max_D  L_cGAN(G, D) + lambda * L_L1(G).
Each iteration takes one D step on a real pair and a (detached) fake pair, then one G step with D frozen.
pix2pixHD's terms join the G step where the run has them: feature matching on a multi-scale D's features
(lambda_feat) and the VGG19 perceptual loss (lambda_vgg, with ``--vgg``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import LossConfig, TrainConfig
from ..speed import FP32, Precision
from .losses import d_loss, feature_matching, g_loss, gradient_penalty, vgg_loss


@dataclass
class Networks:
    """What a step trains: G and D (None for L1 alone) and their optimizers, and the views the step runs them
    through. The views default to the modules themselves; under torchrun ``G_step`` and ``D_step`` are wrapped
    in DistributedDataParallel, and on the fast path they may be compiled. ``D_frozen`` is the D the G step runs
    through: it must not touch D's gradients (under torchrun the bare module, without DDP's hooks). WGAN-GP's
    penalty differentiates the bare ``D`` twice (no compiled or DDP graph has a double backward)."""

    G: nn.Module
    D: nn.Module | None
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer | None
    G_step: nn.Module | None = None
    D_step: nn.Module | None = None
    D_frozen: nn.Module | None = None
    vgg: nn.Module | None = None  # VGG19's features for the perceptual loss (--vgg), frozen

    def __post_init__(self) -> None:
        self.G_step = self.G_step or self.G
        self.D_step = self.D_step or self.D
        self.D_frozen = self.D_frozen or self.D_step

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [o for o in (self.opt_G, self.opt_D) if o is not None]


def train_step(real_A: torch.Tensor, real_B: torch.Tensor, nets: Networks, loss: LossConfig,
               amp: Precision = FP32) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One pix2pix iteration on a batch (x = real_A, y = real_B). Returns detached losses and G(x).

    The losses stay on the device: reading them is a host sync, so the loop does it only every few steps.
    ``amp`` is the fast path's arithmetic (:class:`pix2pix.speed.Precision`): autocast for the forward passes,
    and gradient scaling for fp16; the default is the plain fp32 ``loss.backward()``, ``opt.step()``.
    """
    def d_input(b: torch.Tensor) -> torch.Tensor:  # a conditional D sees (x, y); an unconditional one y only
        return torch.cat([real_A, b], 1) if loss.conditional else b

    with amp():
        fake_B = nets.G_step(real_A)  # G(x, z): the noise z is dropout
    losses: dict[str, torch.Tensor] = {}

    if nets.D is not None:
        # D step: maximise log D(x, y) + log(1 - D(x, G(x))), halved (for wgangp: minimise Gulrajani et al.'s
        # E[D(x, G(x))] - E[D(x, y)] + lambda_gp * GP); the fake is detached so G is untouched.
        nets.D.requires_grad_(True)
        nets.opt_D.zero_grad(set_to_none=True)
        with amp():
            pred_fake = nets.D_step(d_input(fake_B.detach()))
            pred_real = nets.D_step(d_input(real_B))
            loss_D = d_loss(loss.gan_loss, pred_real, pred_fake)
            if loss.gan_loss == "wgangp":
                gp = gradient_penalty(nets.D, real_A if loss.conditional else None, real_B, fake_B.detach(),
                                      scale=amp.loss_scale("D"))
                losses["D_gp"] = gp.detach()
                loss_D = loss_D + loss.lambda_gp * gp
        amp.backward(loss_D, "D")
        amp.step(nets.opt_D, "D")
        losses["D"] = loss_D.detach()
        nets.D.requires_grad_(False)  # D is frozen for the G step

    # G step: fool D (non-saturating: maximise log D(x, G(x))) and stay close to y in L1. All of G's gradients are
    # cleared, not only those opt_G steps (a local generator's global part may be held fixed).
    nets.G.zero_grad(set_to_none=True)
    terms: dict[str, torch.Tensor] = {}
    if nets.D is not None:
        with amp():
            pred = nets.D_frozen(d_input(fake_B))
        terms["G_gan"] = g_loss(loss.gan_loss, pred)
        if loss.lambda_feat and isinstance(pred, list):  # pix2pixHD: a multi-scale D gives its features
            with torch.no_grad(), amp():  # the real pair's, through the same (updated) D as the fake's
                real_features = nets.D_frozen(d_input(real_B))
            terms["G_feat"] = feature_matching(pred, real_features) * loss.lambda_feat
    if nets.vgg is not None and loss.lambda_vgg:  # pix2pixHD's perceptual loss
        with amp():
            terms["G_vgg"] = vgg_loss(nets.vgg, fake_B, real_B) * loss.lambda_vgg
    if loss.uses_l1:
        terms["G_l1"] = F.l1_loss(fake_B.float(), real_B) * loss.lambda_l1
    loss_G = sum(terms.values(), real_B.new_zeros(()))
    amp.backward(loss_G, "G")
    amp.step(nets.opt_G, "G")
    losses |= {k: v.detach() for k, v in terms.items()} | {"G": loss_G.detach()}
    return losses, fake_B.detach()


def lr_factor(step: int, steps_per_epoch: int, epochs: int, epochs_decay: int) -> float:
    """Constant for ``epochs`` epochs, then linear to zero over ``epochs_decay`` epochs, per step:

        factor(t) = min(1, (S * (E + D) - t) / (S * D)),   t = optimizer steps taken, S = steps per epoch.

    The first decaying step runs at the full lr, the last at lr / (S * D); the lr would reach 0 only after
    the final step. (The reference decays per epoch, starting one epoch early and ending on an epoch at 0.)
    """
    if epochs_decay <= 0:
        return 1.0
    s, total = steps_per_epoch, steps_per_epoch * (epochs + epochs_decay)
    return max(0.0, min(1.0, (total - step) / (s * epochs_decay)))


def lr_at(t: TrainConfig, steps_per_epoch: int, taken: int) -> float:
    """The lr after ``taken`` optimizer steps: what step ``taken + 1`` runs at."""
    return t.lr * lr_factor(taken, steps_per_epoch, t.epochs, t.epochs_decay)


def set_lr(nets: Networks, lr: float) -> None:
    for opt in nets.optimizers:
        for group in opt.param_groups:
            group["lr"] = lr
