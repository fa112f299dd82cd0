"""Adversarial losses. Each takes the discriminator's logits and returns a scalar.

``d_loss(real, fake)`` is the discriminator's loss, halved as in the paper ("we divide the objective by 2
while optimizing D"); ``g_loss(fake)`` is the generator's adversarial term. For ``vanilla`` the G term is
the non-saturating one, -log D(x, G(x)), as the paper recommends. A multi-scale D (pix2pixHD) gives, for
each scale, its layers' features and last its logits: both losses are summed over the scales, as pix2pixHD
sums them, and :func:`feature_matching` compares the features.

``wgangp`` is WGAN-GP as Gulrajani et al. (2017) define it, not halved: the critic minimises
E[D(x, G(x))] - E[D(x, y)] + lambda_gp * GP, where GP = E[(||grad_y D(x, y_hat)||_2 - 1)^2] at random
interpolates y_hat of the real and the fake output (:func:`gradient_penalty`), and G minimises -E[D(x, G(x))].
Its critic has no batch norm (the configuration gives it layer norm, as they recommend).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import Pix2PixError


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _mse(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.mse_loss(logits, torch.full_like(logits, target))


Prediction = torch.Tensor | list  # one map of logits, or a multi-scale D's [[features..., logits] per scale]


def logits(pred: Prediction) -> list[torch.Tensor]:
    """Each scale's map of logits, in fp32."""
    return [pred.float()] if isinstance(pred, torch.Tensor) else [scale[-1].float() for scale in pred]


def d_loss(kind: str, real: Prediction, fake: Prediction) -> torch.Tensor:
    """D's loss, summed over scales."""
    return sum(_d_loss(kind, r, f) for r, f in zip(logits(real), logits(fake)))


def g_loss(kind: str, fake: Prediction) -> torch.Tensor:
    """G's adversarial term, summed over scales."""
    return sum(_g_loss(kind, f) for f in logits(fake))


def feature_matching(fake: list, real: list) -> torch.Tensor:
    """pix2pixHD's feature-matching loss (unweighted by lambda_feat): for each of the D's scales, the L1 distance
    between its features on the fake pair and on the real one (detached), every layer but the logits, each
    weighted 4 / (n_layers + 1) x 1 / num_D (n_layers + 1 features a scale)."""
    total = fake[0][0].new_zeros((), dtype=torch.float32)
    for f_scale, r_scale in zip(fake, real):
        weight = 4.0 / (len(f_scale) - 1) / len(fake)
        for f, r in zip(f_scale[:-1], r_scale[:-1]):
            total = total + weight * F.l1_loss(f.float(), r.detach().float())
    return total


def vgg_loss(vgg: nn.Module, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """pix2pixHD's VGG loss (unweighted by lambda): over relu1_1 .. relu5_1 of VGG19
    (:class:`pix2pix.networks.vgg.VGG19Features`), weight x L1(VGG(fake), VGG(real)), the real image's features
    detached. Images go in as the networks see them, in [-1, 1], as pix2pixHD's do."""
    from ..networks.vgg import TAPS

    total = fake.new_zeros((), dtype=torch.float32)
    for (_, weight), f, r in zip(TAPS, vgg(fake), vgg(real)):
        total = total + weight * F.l1_loss(f.float(), r.detach().float())
    return total


def _d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    if kind == "vanilla":
        return 0.5 * (_bce(real, 1.0) + _bce(fake, 0.0))
    if kind == "lsgan":
        return 0.5 * (_mse(real, 1.0) + _mse(fake, 0.0))
    if kind == "hinge":
        return 0.5 * (F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())
    if kind == "wgangp":  # the critic's Wasserstein estimate, unhalved; the caller adds lambda_gp * GP
        return fake.mean() - real.mean()
    raise Pix2PixError(f"unknown --gan-loss '{kind}'; choose from vanilla, lsgan, hinge, wgangp")


def _g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    if kind == "vanilla":
        return _bce(fake, 1.0)
    if kind == "lsgan":
        return _mse(fake, 1.0)
    if kind in ("hinge", "wgangp"):
        return -fake.mean()
    raise Pix2PixError(f"unknown --gan-loss '{kind}'; choose from vanilla, lsgan, hinge, wgangp")


def gradient_penalty(D: nn.Module, cond: torch.Tensor | None, real: torch.Tensor, fake: torch.Tensor,
                     scale: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP's penalty: E[(||grad_y D(x, y_hat)||_2 - 1)^2], y_hat = alpha * y + (1 - alpha) * G(x), one alpha
    ~ U[0, 1] per sample.

    For a conditional critic only the output is interpolated and the condition x is kept as it is: the real
    and the fake pair share their x, so the line between the two pairs is the line between the two outputs,
    and the constraint is that D(x, .) be 1-Lipschitz in the output it judges for each x (the gradient with
    respect to x is not penalised). A sample's critic value is the mean of D's patch map, the value whose
    expectation the critic loss takes, so the penalty and the loss are on one scale. The pass leaves
    batch-norm running statistics as they were.

    ``D`` must be the bare eager module: neither DistributedDataParallel nor a compiled graph supports the
    double backward. ``scale``: an fp16 gradient scaler's factor; the gradient is taken of the scaled output
    (so that small gradients do not underflow in fp16) and unscaled before the norm.
    """
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    with running_statistics_kept(D):
        out = D(mixed if cond is None else torch.cat([cond, mixed], 1)).float()
    out = out.reshape(out.shape[0], -1).mean(1).sum()  # each sample's value: the mean of its patch map
    with torch.autocast(mixed.device.type, enabled=False):  # as torch's AMP recipe: the gradient outside autocast
        (grad,) = torch.autograd.grad(out if scale is None else out * scale, mixed, create_graph=True)
    grad = grad.float() if scale is None else grad.float() / scale
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


@contextlib.contextmanager
def running_statistics_kept(net: nn.Module):
    """Within: batch norm in training mode updates copies of its running statistics, then the originals are put
    back (copies, not a restore in place, since autograd may have saved the tensors the pass used)."""
    kept = []
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                if getattr(m, name) is not None:
                    kept.append((m, name, getattr(m, name)))
                    setattr(m, name, getattr(m, name).clone())
    try:
        yield
    finally:
        for m, name, tensor in kept:
            setattr(m, name, tensor)
