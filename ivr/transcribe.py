"""Speech to text for voicemail: pocketsphinx with the US English acoustic and
language model its wheel ships (nothing is downloaded at run time).

A voicemail message is 8 kHz telephone audio; the model was trained on
16 kHz speech, whose consonants it hears above 4 kHz as much as below.  So
the message is brought to a steady level, its upper telephone band (above
about 1.5 kHz) raised by some 14 dB, a faint noise floor added (the model's
noise removal and silence detection expect a microphone's hiss, not the
digital silence of a recording), and resampled to 16 kHz (the upper half
stays empty).  It then goes through the front end twice: once only to fit
the decoder's running channel (cepstral mean) and noise estimates to this
recording, then to be decoded with them.  Over eight espeak-ng voices
saying "please call me back tomorrow" through G.711 (32 words), the words
recognised rise from 2 (the audio merely resampled) to 18 (prepared) and
24 (primed).  The noise is seeded: one recording, one transcript.

pocketsphinx holds the GIL while it decodes (a minute of audio stalled an
event loop for the whole minute), so a message is transcribed in a child
process (``python -m ivr.transcribe FILE``) at a lower CPU priority: the
PBX's media keeps its time, and a transcription that overruns or is no
longer wanted is killed.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import numpy as np
import soundfile
from pocketsphinx import Decoder
from scipy.signal import butter, sosfilt

from media.codecs import Resampler

MODELS = {"en": "en-us"}  # language → model in pocketsphinx's wheel: only US English
MODEL_RATE = 16000
PEAK = 0.5  # the loudest sample is brought to half of full scale …
NOISE = 0.003  # … over white noise at about -50 dBFS
TILT_HZ, TILT_GAIN = 1500.0, 4.0  # the band above TILT_HZ added again four times (+14 dB)
NICE = 10  # the child's CPU priority below the PBX's
_ROOT = Path(__file__).resolve().parents[1]  # where the child finds this package


class TranscriptionError(RuntimeError):
    """The recogniser could not read or decode a message (said in the message)."""


def has_model(language: str) -> bool:
    """Whether messages in ``language`` can be transcribed."""
    return language in MODELS


def prepare(samples: np.ndarray, rate: int) -> np.ndarray:
    """Mono telephone audio at ``rate`` → the model's input: int16 at 16 kHz,
    upper band raised, peak-normalised, over the noise floor."""
    audio = np.asarray(samples, dtype=np.float64)
    audio = audio + TILT_GAIN * sosfilt(butter(2, TILT_HZ, "highpass", fs=rate, output="sos"),
                                        audio)
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    if peak > 0:
        audio *= PEAK / peak
    audio += NOISE * np.random.default_rng(0).standard_normal(len(audio))
    if rate != MODEL_RATE:
        audio = Resampler(rate, MODEL_RATE).process(audio)
    return np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)


def transcribe(samples: np.ndarray, rate: int) -> str:
    """The words said in ``samples`` (lower case, space-separated; "" for none).
    Blocking, and holding the GIL: see :func:`transcribe_file`."""
    audio = prepare(samples, rate).tobytes()
    decoder = Decoder(samprate=MODEL_RATE, loglevel="FATAL")
    for search in (False, True):  # the whole message as one utterance, each time
        decoder.start_utt()
        decoder.process_raw(audio, no_search=not search, full_utt=True)
        decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr if hypothesis is not None else ""


async def transcribe_file(path: Path, timeout: float) -> str | None:
    """The transcript of the WAV at ``path``, made in a child process; None when
    it takes longer than ``timeout`` seconds.  Cancelling kills the child."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ivr.transcribe", str(path), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(child.communicate(), timeout)
    except asyncio.TimeoutError:
        return None
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    if child.returncode != 0:
        said = err.decode(errors="replace").strip().splitlines()
        raise TranscriptionError(said[-1] if said else f"exit status {child.returncode}")
    return out.decode().strip()


def main(argv: list[str]) -> int:
    """``python -m ivr.transcribe FILE``: print the transcript of a mono WAV."""
    if len(argv) != 1:
        print("usage: python -m ivr.transcribe FILE.wav", file=sys.stderr)
        return 2
    os.nice(NICE)
    try:
        samples, rate = soundfile.read(argv[0], dtype="int16")
    except (OSError, soundfile.LibsndfileError) as exc:
        print(f"cannot read {argv[0]}: {exc}", file=sys.stderr)
        return 1
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    print(transcribe(samples, rate))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
