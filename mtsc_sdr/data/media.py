"""Reading and checking image, audio and video files/arrays, with clear errors.

Images: JPEG, PNG, BMP, PPM/PGM, TIFF or WebP, at least 8x8 pixels and at most 100 megapixels;
converted to RGB and fitted to the model's input (shorter side resized, centre crop).
Audio: WAV (PCM 8/16/32-bit or float), any channel count (averaged to mono), sample rate
8 kHz .. 192 kHz, resampled to 16 kHz. Video: a folder of extracted frames (images as above).
"""

from __future__ import annotations

import os
import warnings
from fractions import Fraction

import numpy as np

from .errors import UnsupportedMedia

# PIL and scipy.io / scipy.signal are imported by the functions that read files with them: the
# built-in data and the client import this module, and scipy.signal alone costs ~0.2 s or more.

IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "PPM", "TIFF", "WEBP")
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif",
                                     ".tiff", ".webp")
MIN_IMAGE_PX = 8
MAX_IMAGE_PIXELS = 100_000_000
MIN_SAMPLE_RATE_HZ = 8000
MAX_SAMPLE_RATE_HZ = 192000
TARGET_SAMPLE_RATE_HZ = 16000


def fit_image(image: np.ndarray, size_px: int) -> np.ndarray:
    """Resize the shorter side to ``size_px`` (bicubic, or box when shrinking a lot) and centre-crop.

    Args:
        image: uint8 (H, W, 3).
        size_px: output side.

    Returns:
        uint8 (size_px, size_px, 3).
    """
    from PIL import Image

    check_image(image)
    h, w = image.shape[:2]
    scale = size_px / min(h, w)
    nh, nw = max(size_px, round(h * scale)), max(size_px, round(w * scale))
    im = Image.fromarray(image)
    if (nh, nw) != (h, w):
        im = im.resize((nw, nh), Image.Resampling.BICUBIC if scale > 0.5 else Image.Resampling.BOX)
    top, left = (nh - size_px) // 2, (nw - size_px) // 2
    return np.asarray(im, dtype=np.uint8)[top:top + size_px, left:left + size_px].copy()


def check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Check an image array is uint8 (H, W, 3) with H, W >= 8; UnsupportedMedia otherwise."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise UnsupportedMedia(f"{what}: expected a uint8 array (H, W, 3) RGB, got {dtype} {shape}")
    if min(image.shape[:2]) < MIN_IMAGE_PX:
        raise UnsupportedMedia(f"{what}: {image.shape[1]}x{image.shape[0]} pixels is smaller than "
                               f"the minimum {MIN_IMAGE_PX}x{MIN_IMAGE_PX}")
    return image


def read_image(path: str, size_px: int | None = None) -> np.ndarray:
    """Read an image file as uint8 (H, W, 3) RGB, fitted to ``size_px`` if given.

    Raises:
        FileNotFoundError: no such file.
        UnsupportedMedia: not an image, a format outside :data:`IMAGE_FORMATS`, or a size outside
            8x8 .. 100 megapixels; the message names the file.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        im = Image.open(path)
    except UnidentifiedImageError as e:
        raise UnsupportedMedia(f"{path}: not a readable image (supported formats: "
                               f"{', '.join(IMAGE_FORMATS)})") from e
    with im:
        if im.format not in IMAGE_FORMATS:
            raise UnsupportedMedia(f"{path}: image format {im.format} is not supported "
                                   f"(supported: {', '.join(IMAGE_FORMATS)})")
        w, h = im.size
        if min(w, h) < MIN_IMAGE_PX or w * h > MAX_IMAGE_PIXELS:
            raise UnsupportedMedia(f"{path}: image size {w}x{h} is not supported (at least "
                                   f"{MIN_IMAGE_PX}x{MIN_IMAGE_PX}, at most {MAX_IMAGE_PIXELS} pixels)")
        try:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
        except OSError as e:
            raise UnsupportedMedia(f"{path}: image data is truncated or corrupt ({e})") from e
    return fit_image(arr, size_px) if size_px else arr


def read_wav(path: str, target_rate_hz: int = TARGET_SAMPLE_RATE_HZ) -> np.ndarray:
    """Read a WAV file as float32 mono in [-1, 1], resampled to ``target_rate_hz``.

    PCM uint8 / int16 / int32 and float32/64 WAVs are accepted; channels are averaged;
    resampling is polyphase (``scipy.signal.resample_poly``).

    Raises:
        FileNotFoundError: no such file.
        UnsupportedMedia: not a WAV file (e.g. MP3/FLAC: convert to WAV first), an unsupported
            sample type, a sample rate outside 8 kHz .. 192 kHz, or no samples.
    """
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    if not os.path.isfile(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, data = wavfile.read(path)
    except ValueError as e:
        raise UnsupportedMedia(f"{path}: not a supported WAV file ({e}); audio must be WAV "
                               "(PCM or float) -- convert other formats, e.g. "
                               "`ffmpeg -i in.flac out.wav`") from e
    if not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
        raise UnsupportedMedia(f"{path}: sample rate {rate} Hz is not supported "
                               f"({MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ} Hz)")
    if data.dtype == np.uint8:
        x = (data.astype(np.float32) - 128.0) / 128.0
    elif data.dtype == np.int16:
        x = data.astype(np.float32) / 32768.0
    elif data.dtype == np.int32:
        x = data.astype(np.float32) / 2147483648.0
    elif data.dtype in (np.float32, np.float64):
        x = data.astype(np.float32)
    else:
        raise UnsupportedMedia(f"{path}: WAV sample type {data.dtype} is not supported")
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.size == 0:
        raise UnsupportedMedia(f"{path}: the WAV file has no samples")
    if rate != target_rate_hz:
        fr = Fraction(target_rate_hz, int(rate))
        x = resample_poly(x, fr.numerator, fr.denominator).astype(np.float32)
    return np.clip(x, -1.0, 1.0)


def check_audio(wave: np.ndarray, sample_rate_hz: int, what: str = "audio") -> np.ndarray:
    """Check a waveform is 1-D float32 at 16 kHz with samples; UnsupportedMedia otherwise."""
    if not isinstance(wave, np.ndarray) or wave.ndim != 1 or wave.dtype != np.float32 or wave.size == 0:
        raise UnsupportedMedia(f"{what}: expected a non-empty float32 array (n,), got "
                               f"{getattr(wave, 'dtype', type(wave).__name__)} {getattr(wave, 'shape', None)}")
    if sample_rate_hz != TARGET_SAMPLE_RATE_HZ:
        raise UnsupportedMedia(f"{what}: sample rate {sample_rate_hz} Hz; the models take "
                               f"{TARGET_SAMPLE_RATE_HZ} Hz (read_wav resamples)")
    return wave


def read_frames(folder: str, num_frames: int, size_px: int) -> np.ndarray:
    """Read ``num_frames`` frames spread evenly over a folder of extracted frames.

    Frames are the folder's image files (see :data:`IMAGE_EXTENSIONS`) in name order; with fewer
    files than ``num_frames`` some are repeated.

    Returns:
        uint8 (num_frames, size_px, size_px, 3).

    Raises:
        UnsupportedMedia: the folder holds no image files.
    """
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise UnsupportedMedia(f"{folder}: no frames (expected image files "
                               f"{', '.join(IMAGE_EXTENSIONS)} extracted from the video)")
    pick = np.linspace(0, len(names) - 1, num_frames).round().astype(int)
    return np.stack([read_image(os.path.join(folder, names[i]), size_px) for i in pick])
