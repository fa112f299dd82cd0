"""The README's five-minute tour, run as a new user would run it: its shell commands (with the `pix2pix` that
`source .venv/bin/activate` puts on the PATH) and its Python blocks, in order, in a folder holding the two
folders of images the tour starts from. Only `--minutes` is shortened; `make` (the bootstrap that installed
what runs this test) and `source` are what this test's environment already did."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import make_pair

README = Path(__file__).resolve().parent.parent / "README.md"
PORT = 7860  # the tour's, as written


def tour_blocks() -> list[tuple[str, str]]:
    """(language, code) of each fenced block of the README's "Five-minute tour" section, in order."""
    text = README.read_text()
    section = text[text.index("## Five-minute tour"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```(sh|python)\n(.*?)```", section, re.S)


def commands(code: str) -> list[str]:
    """The commands of a shell block: comments dropped, continuations joined, set-up lines left out."""
    lines = re.sub(r"\\\n\s*", " ", code).splitlines()
    lines = [line.split("  #")[0].strip() for line in lines]
    return [line for line in lines if line and not line.startswith(("#", "make ", "source "))]


def wait_for_port(port: int, proc: subprocess.Popen, seconds: float = 120) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"the server ended: {proc.stderr.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"nothing listens on {port} after {seconds} s")


@pytest.mark.slow
def test_the_readme_tour_runs_as_written(tmp_path):
    blocks = tour_blocks()
    assert [lang for lang, _ in blocks].count("python") == 2 and len(blocks) >= 8
    rng = np.random.default_rng(0)
    for folder in ("labels", "photos"):
        (tmp_path / folder).mkdir()
    for i in range(1, 21):  # the user's two folders: inputs and targets with the same names
        label, photo = make_pair(rng, 64)
        Image.fromarray(label).save(tmp_path / "labels" / f"{i}.png")
        Image.fromarray(photo).save(tmp_path / "photos" / f"{i}.png")
    bin_dir = str(Path(sys.executable).parent)  # what `source .venv/bin/activate` puts first on the PATH
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    server = None
    try:
        for lang, code in blocks:
            if lang == "python":
                done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                                      text=True, timeout=300)
                assert done.returncode == 0, f"{code}\n{done.stderr}"
                continue
            for command in commands(code):
                command = re.sub(r"--minutes \d+", "--minutes 0.1", command)
                argv = shlex.split(command)
                if argv[:2] == ["pix2pix", "serve"]:  # runs until stopped: the next block talks to it
                    with socket.socket() as probe:
                        if probe.connect_ex(("127.0.0.1", PORT)) == 0:
                            pytest.skip(f"port {PORT}, the README's, is taken on this machine")
                    server = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, text=True)
                    wait_for_port(PORT, server)
                    continue
                done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
                assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    # What the tour says each step gives.
    assert sorted(p.name for p in (tmp_path / "datasets" / "mine").iterdir()) == ["test", "train", "val"]
    assert (tmp_path / "runs" / "mine" / "checkpoints" / "best.safetensors").exists()
    assert (tmp_path / "runs" / "mine" / "web" / "curves.png").exists()
    assert len(list((tmp_path / "translated").glob("*.png"))) == 20
    for name in ("photo.png", "onnx.png"):
        assert Image.open(tmp_path / name).size == (64, 64)
    assert (tmp_path / "mine.onnx").stat().st_size > 100_000
