"""Video files through a model, frame by frame (pix2pix.inference.video)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from conftest import make_pair, one_line_error, train_tiny
from pix2pix.cli import main

FRAMES, RATE, W, H = 12, 10, 64, 48


def make_clip(path, still: bool = False, audio: bool = True):
    """An H.264 clip of FRAMES label-map frames at RATE fps (the same frame throughout when ``still``), with a
    mono AAC tone as long as the video."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=RATE)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        a = out.add_stream("aac", rate=22050, layout="mono") if audio else None
        first = make_pair(rng, W)[0][:H]
        for i in range(FRAMES):
            image = first if still else make_pair(rng, W)[0][:H]
            out.mux(v.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")))
        out.mux(v.encode())
        if a is not None:
            samples = FRAMES * 22050 // RATE
            tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 22050)).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            frame.sample_rate = 22050
            out.mux(a.encode(frame))
            out.mux(a.encode())
    return path


def decoded(path):
    with av.open(str(path)) as f:
        v = f.streams.video[0]
        frames = [fr.to_ndarray(format="rgb24") for fr in f.decode(v)]
        return frames, v.average_rate, [s.type for s in f.streams]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from conftest import TINY, make_aligned_dataset

    tmp = tmp_path_factory.mktemp("video")
    return train_tiny(tmp, make_aligned_dataset(tmp / "blocks", {"train": 4}), list(TINY), "--max-steps", "4",
                      "--direction", "BtoA")


def test_a_clip_keeps_its_frames_size_rate_and_audio(tmp_path, run):
    clip = make_clip(tmp_path / "clip.mp4")
    assert main(["translate", "--checkpoint", str(run), "--input", str(clip), "--output", str(tmp_path / "out.mp4"),
                 "--eval"]) == 0
    frames, rate, kinds = decoded(tmp_path / "out.mp4")
    source, _, _ = decoded(clip)
    assert len(frames) == FRAMES and frames[0].shape == (H, W, 3)
    assert rate == Fraction(RATE) and kinds == ["video", "audio"]
    assert np.abs(frames[5].astype(int) - source[5].astype(int)).mean() > 5  # translated, not copied
    with av.open(str(tmp_path / "out.mp4")) as f, av.open(str(clip)) as g:
        assert f.streams.audio[0].codec_context.name == "aac"
        assert f.streams.audio[0].frames == g.streams.audio[0].frames  # the audio copied as it is


def test_one_seed_for_every_frame_keeps_a_still_scene_still(tmp_path, run):
    clip = make_clip(tmp_path / "still.mp4", still=True, audio=False)
    assert main(["translate", "--checkpoint", str(run), "--input", str(clip), "--output", str(tmp_path / "out"),
                 "--seed", "3"]) == 0  # the paper's mode, its noise the same in every frame
    frames, _, kinds = decoded(tmp_path / "out" / "still.mp4")
    assert kinds == ["video"] and len(frames) == FRAMES
    assert max(np.abs(f.astype(int) - frames[0].astype(int)).mean() for f in frames) < 1.0  # encoding error only


@pytest.mark.parametrize("extra,needle", [
    (["--tile", "32"], "--tile is for image files"),
    (["--output-format", "png"], "--output-format is for image files"),
])
def test_image_options_on_a_video_are_one_line(tmp_path, run, capsys, extra, needle):
    clip = make_clip(tmp_path / "clip.mp4", audio=False)
    code = main(["translate", "--checkpoint", str(run), "--input", str(clip), "--output", str(tmp_path / "o"), *extra])
    one_line_error(capsys, code, needle)


def test_videos_and_images_together_and_a_broken_video_are_one_line(tmp_path, run, capsys):
    from PIL import Image

    clip = make_clip(tmp_path / "clip.mp4", audio=False)
    Image.fromarray(make_pair(np.random.default_rng(0), 32)[0]).save(tmp_path / "x.png")
    code = main(["translate", "--checkpoint", str(run), "--input", str(clip), str(tmp_path / "x.png"), "--output",
                 str(tmp_path / "o")])
    one_line_error(capsys, code, "separate commands")
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all")
    code = main(["translate", "--checkpoint", str(run), "--input", str(tmp_path / "bad.mp4"), "--output",
                 str(tmp_path / "o2.mp4")])
    one_line_error(capsys, code, "not a readable video")
    assert not (tmp_path / "o2.mp4").exists()
