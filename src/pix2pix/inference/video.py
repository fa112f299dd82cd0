"""Video files through a model, frame by frame, with PyAV (FFmpeg's Python bindings): ``pix2pix translate --input
clip.mp4 --output out.mp4`` (or ``--output DIR``: ``DIR/clip.mp4``).

The output keeps the input's frame rate and timestamps, and its audio is copied as it is (no re-encoding). Each
frame is translated at its own size (the generators pad and crop); H.264 in yuv420p needs even sides, so an odd
side loses its last row or column. In eval mode, or with ``--seed`` (the same noise for every frame), a still
scene gives the same frame; the paper's mode without a seed draws new noise for each frame, which flickers, and
``translate`` says so. The file is written beside its destination and renamed into place when complete.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

from ..errors import Pix2PixError
from ..files import atomic_write

log = logging.getLogger(__name__)

VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
CODECS = {".webm": "libvpx-vp9"}  # everything else: H.264 (libx264)


def is_video(path: Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTS


def video_pixels(path: Path) -> int:
    """Frames x width x height of a video, from its header (0 when it does not say): the work of translating it."""
    import av

    try:
        with av.open(str(path)) as f:
            v = f.streams.video[0]
            return (v.frames or 0) * v.codec_context.width * v.codec_context.height
    except (av.FFmpegError, OSError, IndexError):
        return 0


def translate_video(translator, src: Path, dest: Path, seed: int | None = None, progress: bool = True) -> Path:
    """Translate every frame of ``src`` into the video file ``dest``; returns ``dest``."""
    import av
    from tqdm import tqdm

    src, dest = Path(src), Path(dest)
    if translator.config.in_channels != 3 or translator.config.out_channels != 3 or not translator.scales.eight_bit:
        raise Pix2PixError(f"{src}: a video's frames are 8-bit RGB, and this model takes {translator.config.in_channels}"
                           f" and writes {translator.config.out_channels} channel(s) of {translator.scales.input.data} "
                           "data")
    if not translator.eval and seed is None:
        log.info(f"{src.name}: the paper's mode draws new noise for every frame, which flickers; --eval, or --seed N "
                 "(the same noise for every frame), gives a still scene still frames")
    try:
        inp = av.open(str(src))
    except (av.FFmpegError, OSError) as e:
        raise Pix2PixError(f"{src}: not a readable video ({e})") from None
    with inp:
        if not inp.streams.video:
            raise Pix2PixError(f"{src}: holds no video stream")
        vin = inp.streams.video[0]
        ain = inp.streams.audio[0] if inp.streams.audio else None
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)

        def write(tmp: str) -> None:
            with av.open(tmp, "w", format=_format(dest)) as out:
                vout = out.add_stream(CODECS.get(dest.suffix.lower(), "libx264"), rate=rate)
                vout.width, vout.height = vin.codec_context.width // 2 * 2, vin.codec_context.height // 2 * 2
                vout.pix_fmt, vout.time_base = "yuv420p", vin.time_base
                aout = out.add_stream_from_template(ain) if ain is not None else None
                streams = [vin] + ([ain] if ain is not None else [])
                with tqdm(total=vin.frames or None, unit="frame", disable=not progress, desc=src.name) as bar:
                    for packet in inp.demux(*streams):
                        if packet.stream is ain:
                            if packet.dts is not None:  # the demuxer's flush packet has none
                                packet.stream = aout
                                out.mux(packet)
                            continue
                        for frame in packet.decode():
                            image = translator(frame.to_image(), seed)
                            made = av.VideoFrame.from_image(image.crop((0, 0, vout.width, vout.height)))
                            made.pts, made.time_base = frame.pts, frame.time_base
                            out.mux(vout.encode(made))
                            bar.update(1)
                    out.mux(vout.encode())  # what the encoder still holds

        try:
            atomic_write(dest, write)
        except av.FFmpegError as e:
            raise Pix2PixError(f"{src}: could not translate the video ({e})") from None
    return dest


def _format(dest: Path) -> str:
    return {".mkv": "matroska", ".m4v": "mp4", ".webm": "webm", ".mov": "mov", ".avi": "avi"}.get(
        dest.suffix.lower(), "mp4")
