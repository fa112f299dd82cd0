"""Shared fixtures: tiny generated datasets and the flags of a tiny training configuration."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix.config import DataConfig
from pix2pix.data.labels import FACADES

# A U-Net of depth 5 with 4 filters and a 4-filter PatchGAN on 32x32 crops: a CPU step takes milliseconds.
# Validation off: the tests of validation turn it on (a later flag wins).
TINY = ["--generator", "unet_32", "--ngf", "4", "--ndf", "4", "--load-size", "36", "--crop-size", "32",
        "--workers", "0", "--no-progress", "--log-every", "2", "--sample-every", "3", "--val-every", "0"]

COLOURS = np.array([[0, 0, 170], [0, 85, 255], [0, 170, 255], [255, 85, 0]], np.uint8)


def make_pair(rng: np.random.Generator, size: int, colours: np.ndarray = COLOURS) -> tuple[np.ndarray, np.ndarray]:
    """A (label map, photo) pair: rectangles of 4 classes in ``colours``, and a shaded rendering in which each
    class has a tint."""
    labels = np.zeros((size, size), np.int64)
    for cls in (1, 2, 3, 2):
        x, y = rng.integers(0, size * 3 // 4, 2)
        w, h = rng.integers(size // 8, size // 2, 2)
        labels[y:y + h, x:x + w] = cls
    shade = np.linspace(0.7, 1.1, size)[None, :, None]
    tint = np.array([[150, 190, 230], [185, 150, 120], [40, 55, 70], [110, 70, 40]], np.float64)
    photo = np.clip(tint[labels] * shade + rng.normal(0, 4, (size, size, 3)), 0, 255).astype(np.uint8)
    return colours[labels], photo


def make_aligned_dataset(root: Path, splits: dict[str, int], size: int = 32, seed: int = 0,
                         colours: np.ndarray = COLOURS) -> Path:
    """An aligned dataset like facades: ``root/SPLIT/N.png`` with the photo (A) left of the labels (B)."""
    rng = np.random.default_rng(seed)
    for split, n in splits.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            label, photo = make_pair(rng, size, colours)
            Image.fromarray(np.concatenate([photo, label], 1)).save(root / split / f"{i}.png")
    return root


@pytest.fixture(autouse=True, scope="session")
def eager_unless_compiling():
    """The compiled engine compiles for seconds to minutes a model: the tests run PyTorch where ``auto`` would
    compile (a server, a large translation), from the first fixture on, except those marked ``compiles``, which
    test that engine itself (:func:`compiler_as_it_is`)."""
    import pix2pix.inference.engines as engines

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engines, "compiler_available", lambda: False)
        yield


REAL_COMPILER_AVAILABLE = __import__("pix2pix.inference.engines", fromlist=["x"]).compiler_available


@pytest.fixture(autouse=True)
def compiler_as_it_is(request, monkeypatch):
    if "compiles" in request.keywords:
        import pix2pix.inference.engines as engines

        monkeypatch.setattr(engines, "compiler_available", REAL_COMPILER_AVAILABLE)


@pytest.fixture
def blocks(tmp_path: Path) -> Path:
    """An aligned dataset (A = photo | B = labels) with 4 train and 2 val pairs of 32x32."""
    return make_aligned_dataset(tmp_path / "blocks", {"train": 4, "val": 2})


@pytest.fixture
def tiny() -> list[str]:
    return list(TINY)


def train_tiny(tmp_path: Path, data: Path, tiny: list[str], *extra: str, name: str = "run") -> Path:
    """``pix2pix train`` a tiny run into ``tmp_path/runs/NAME``; returns the run folder."""
    from pix2pix.cli import main

    assert main(["train", "--data", str(data), "--runs", str(tmp_path / "runs"), "--name", name, *tiny,
                 *extra]) == 0
    return tmp_path / "runs" / name


def one_line_error(capsys, code: int, needle: str) -> str:
    """Assert the CLI failed as a user error should: exit 2 and one line on stderr holding ``needle``."""
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and "Traceback" not in err, err
    assert needle in err, err
    return err


def free_port() -> int:
    """A TCP port nobody listens on right now, on loopback."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------- small images (test_data, test_batches)

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


# ------------------------------------------------------------------------------------------ helpers


def save(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


def solid(h: int, w: int, colour) -> np.ndarray:
    return np.broadcast_to(np.array(colour, np.uint8), (h, w, 3)).copy()


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save_aligned(path: Path, a: np.ndarray, b: np.ndarray) -> Path:
    return save(path, np.concatenate([a, b], axis=1))


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img)


def as_uint8(t: torch.Tensor) -> np.ndarray:
    """Invert to_tensor exactly (rounding), (C, H, W) -> (H, W, C)."""
    return ((t * 0.5 + 0.5) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def one_line_message(excinfo, path) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, f"multi-line message: {msg!r}"
    assert str(path) in msg, f"{path} not in {msg!r}"
    return msg


def cfg(**kw) -> DataConfig:
    base = dict(load_size=40, crop_size=32, preprocess="resize_and_crop", flip=True, direction="AtoB")
    return DataConfig(**(base | kw))


# The halves are 48 wide and 44 high, so every preprocess changes the geometry differently:
# resize_and_crop resizes to 40x40, crop keeps 48x44, scale_width_and_crop scales to 40 wide (40x36).
W, H = 48, 44
BASE_SIZE = {"resize_and_crop": (40, 40), "crop": (W, H), "scale_width_and_crop": (40, 36)}


@pytest.fixture(scope="module")
def twin(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """An aligned image whose A and B halves are the same noise image."""
    half = noise(H, W, seed=1)
    path = save_aligned(tmp_path_factory.mktemp("twin") / "1.png", half, half)
    return path, half


# ------------------------------------------------------------------ a tiny labels -> photo run (app, export)

CMP4 = FACADES.palette[[0, 1, 2, 3]]  # background, facade, window, door


@pytest.fixture(scope="module")
def labels_run(tmp_path_factory) -> Path:
    """A tiny labels -> photo run on facade-coloured label maps (with a val split for samples)."""
    tmp = tmp_path_factory.mktemp("app")
    data = make_aligned_dataset(tmp / "facadeish", {"train": 4, "val": 3}, colours=CMP4)
    tiny = ["--generator", "unet_32", "--ngf", "4", "--ndf", "4", "--load-size", "36", "--crop-size", "32",
            "--workers", "0", "--no-progress", "--direction", "BtoA", "--max-steps", "4"]
    return train_tiny(tmp, data, tiny, name="facadeish")


@pytest.fixture(scope="module")
def bands_run(tmp_path_factory) -> Path:
    """A tiny run on 5-band .npy inputs and 2-band targets (minmax scalings), with a test split."""
    tmp = tmp_path_factory.mktemp("bands")
    data = make_array_dataset(tmp / "bands", {"train": 4, "test": 2})
    return train_tiny(tmp, data, TINY + ["--in-channels", "5", "--out-channels", "2", "--max-steps", "4"],
                      name="bands")


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def label_image(w: int = 48, h: int = 40) -> np.ndarray:
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:] = CMP4[1]
    arr[5:15, 5:20] = CMP4[2]
    return arr

def make_bands(rng: np.random.Generator, size: int, in_bands: int, out_bands: int) -> tuple[np.ndarray, np.ndarray]:
    """A (bands in, bands out) pair of float32 measurements, far from [0, 1]: smooth fields of a few thousand
    units in, and out a small-valued function of them (so outputs in the wrong units are easy to tell)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    phase = rng.uniform(0, 6, in_bands)
    a = np.stack([2000 * np.sin(3 * xx + p) + 1000 * yy * (k + 1) + 5000 for k, p in enumerate(phase)], 2)
    a += rng.normal(0, 20, a.shape)
    b = np.stack([1e-3 * a.mean(2) / 5000 + 1e-4 * k for k in range(out_bands)], 2)
    return a.astype(np.float32), b.astype(np.float32)


def make_array_dataset(root: Path, splits: dict[str, int], size: int = 32, in_bands: int = 5, out_bands: int = 2,
                       seed: int = 0) -> Path:
    """A two-folder .npy dataset, ``root/A/SPLIT/N.npy`` (H x W x in_bands) and ``root/B/SPLIT/N.npy``."""
    rng = np.random.default_rng(seed)
    for split, n in splits.items():
        for side in "AB":
            (root / side / split).mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            a, b = make_bands(rng, size, in_bands, out_bands)
            np.save(root / "A" / split / f"{i}.npy", a)
            np.save(root / "B" / split / f"{i}.npy", b)
    return root


def make_16bit_dataset(root: Path, splits: dict[str, int], size: int = 32, seed: int = 0) -> Path:
    """A two-folder dataset of 16-bit grayscale PNGs: smooth ramps over most of 0..65535 in, their inverse out."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for split, n in splits.items():
        for side in "AB":
            (root / side / split).mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            a = 4000 + 55000 * (0.5 + 0.5 * np.sin(4 * xx + rng.uniform(0, 6)) * yy)
            Image.fromarray(a.astype(np.uint16)).save(root / "A" / split / f"{i}.png")
            Image.fromarray((65535 - a).astype(np.uint16)).save(root / "B" / split / f"{i}.png")
    return root


class Brightness(torch.nn.Module):
    """A stand-in for the Inception file: one feature, the mean brightness (0..1)."""

    def forward(self, x: torch.Tensor, return_features: bool = True) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3)).unsqueeze(1) / 255


@pytest.fixture
def stand_in(tmp_path) -> Path:
    """A TorchScript file with the Inception file's call, for FID/KID without the real weights."""
    import warnings

    path = tmp_path / "features.pt"
    with warnings.catch_warnings():  # TorchScript is deprecated, but the Inception file is TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(Brightness()).save(str(path))
    return path


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need a CUDA device: where there is none they are skipped, saying so."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# ------------------------------------------------------------------------------------ a real browser


@contextlib.contextmanager
def chromium(*extra_args: str):
    """Debian's Chromium driven by Playwright (skipped where there is none, but not in CI)."""
    browser_path = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if browser_path is None:
        if os.environ.get("CI"):
            pytest.fail("no Chromium in CI: .ci/run installs Debian's chromium before make test")
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", *extra_args])
        try:
            yield browser
        finally:
            browser.close()


def only_local(requests_elsewhere: list):
    """A Playwright route handler that lets the page reach this machine's loopback (and its own data: and
    blob: URLs) and refuses everything else, noting it."""
    from urllib.parse import urlsplit

    def handle(route):
        parts = urlsplit(route.request.url)
        if parts.scheme in ("data", "blob") or parts.hostname == "127.0.0.1":
            route.continue_()
        else:
            requests_elsewhere.append(route.request.url)
            route.abort()
    return handle


def new_output(page, previous: str) -> str:
    """Wait until the page shows an output other than ``previous`` and is not busy; returns its URL."""
    page.wait_for_function(f"document.getElementById('output').src !== {previous!r} && "
                           "!document.getElementById('output-frame').classList.contains('busy')", timeout=60_000)
    return page.evaluate("document.getElementById('output').src")


def draw(page, x0, y0, x1, y1):
    """A stroke on the input canvas from (x0, y0) to (x1, y1), in fractions of its size."""
    box = page.locator("#input").bounding_box()
    page.mouse.move(box["x"] + x0 * box["width"], box["y"] + y0 * box["height"])
    page.mouse.down()
    for k in range(1, 9):
        page.mouse.move(box["x"] + (x0 + (x1 - x0) * k / 8) * box["width"],
                        box["y"] + (y0 + (y1 - y0) * k / 8) * box["height"])
    page.mouse.up()
