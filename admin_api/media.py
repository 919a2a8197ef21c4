"""Music on hold and recorded prompts: audio files checked when they are uploaded.

An upload is read with ``media.audiofile`` before anything is written: an
empty, damaged, too long or unsupported file is a 422 with the reason, never
a surprise in the middle of a call.  A file that passes goes into the data
directory and into use at once: its music class is loaded again and the
engine switches to it (callers on hold included), or the prompt is read
again the next time it plays.  Both serve every organisation on the node,
so only the platform's admins (those of the default organisation) change
them.
"""

# No ``from __future__ import annotations``: FastAPI reads the annotations.
import asyncio
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import soundfile
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel

from admin_api.deps import ERRORS, Db, Sip, User, audit, require
from admin_api.organisations import is_operator
from media.audiofile import SUFFIXES, AudioFileError, read_audio
from media.codecs import ENGINE_RATE
from media.engine import MusicClass
from media.languages import TEXTS
from pbx.models import ApiUser

router = APIRouter(prefix="/api", tags=["media"])

MAX_UPLOAD = 100 * 1024 * 1024  # bytes: an hour of MP3, ten minutes of CD-quality WAV
# names that are files in one folder and nothing else: no separators, no leading dot
ClassName = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")]
FileName = Annotated[str, PathParam(
    pattern=r"^[A-Za-z0-9][A-Za-z0-9 _()+,-]{0,99}\.[A-Za-z0-9]{2,4}$",
    description="the file's name in the class folder; " + ", ".join(SUFFIXES),
)]
UPLOAD: dict[str, Any] = {"requestBody": {
    "required": True, "description": "the audio file's bytes",
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}}
REFUSED: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    413: {"description": f"larger than {MAX_UPLOAD // 2**20} MiB"},
    422: {"description": "not a playable audio file (the reason says why), or a bad name"},
}


class MusicFile(BaseModel):
    name: str
    seconds: float


class SkippedFile(BaseModel):
    name: str
    reason: str


class MusicClassOut(BaseModel):
    name: str
    seconds: float
    generated: bool  # no playable file: callers hear the built-in music
    files: list[MusicFile]
    skipped: list[SkippedFile]  # in the folder, but they cannot play


class PromptOut(BaseModel):
    language: str
    name: str
    seconds: float


def shown(music: MusicClass) -> MusicClassOut:
    return MusicClassOut(
        name=music.name, seconds=round(len(music.samples) / ENGINE_RATE, 2),
        generated=not music.files,
        files=[MusicFile(name=n, seconds=round(s, 2)) for n, s in music.files.items()],
        skipped=[SkippedFile(name=n, reason=r) for n, r in music.skipped.items()],
    )


def operator_only(db: Db, user: ApiUser) -> None:
    if not is_operator(db, user):
        raise HTTPException(403, "music on hold and prompts serve every organisation: "
                                 "only the platform's admins change them")


async def upload(request: Request) -> bytes:
    """The request body, refused with 413 as soon as it is larger than ``MAX_UPLOAD``."""
    if int(request.headers.get("content-length") or 0) > MAX_UPLOAD:
        raise HTTPException(413, f"the file is larger than {MAX_UPLOAD // 2**20} MiB")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_UPLOAD:
            raise HTTPException(413, f"the file is larger than {MAX_UPLOAD // 2**20} MiB")
    return bytes(body)


async def checked(data: bytes) -> np.ndarray:
    """The upload as the engine will play it, or 422 with the reason (decoded off the loop)."""
    try:
        return await asyncio.to_thread(read_audio, data, ENGINE_RATE)
    except AudioFileError as exc:
        raise HTTPException(422, exc.reason) from None


def write_atomically(path: Path, write: Any) -> None:
    """``write(file)`` into a temporary file beside ``path``, then rename: a reader
    (a restart, a reload) sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


@router.get("/moh", response_model=list[MusicClassOut], responses=ERRORS)
async def music_classes(sip: Sip, user: User) -> list[MusicClassOut]:
    """The music classes the engine plays, their files and how long they last."""
    require(user, "admin")
    return [shown(music) for _, music in sorted(sip.engine.music.items())]


@router.put("/moh/{name}/{filename}", response_model=MusicClassOut, responses=REFUSED,
            openapi_extra=UPLOAD)
async def put_music(name: ClassName, filename: FileName, request: Request, sip: Sip,
                    user: User, db: Db) -> MusicClassOut:
    """Add or replace a music file (the body is the file); the class plays it at once."""
    operator_only(db, user)
    if Path(filename).suffix.lower() not in SUFFIXES:
        raise HTTPException(422, f"{filename}: not an audio file name ({', '.join(SUFFIXES)})")
    data = await upload(request)
    samples = await checked(data)
    path = sip.config.data_path / "moh" / name / filename
    before = {"bytes": path.stat().st_size} if path.is_file() else None
    await asyncio.to_thread(write_atomically, path, lambda f: f.write(data))
    music = await sip.music_changed(name)
    audit(db, user, "moh.upload", f"{name}/{filename}", before,
          {"bytes": len(data), "seconds": round(len(samples) / ENGINE_RATE, 2)})
    db.commit()
    return shown(music)


@router.delete("/moh/{name}/{filename}", status_code=204,
               responses={**ERRORS, 404: {"description": "no such file"}})
async def delete_music(name: ClassName, filename: FileName, sip: Sip, user: User,
                       db: Db) -> Response:
    """Remove a music file; the class plays the rest (or the built-in music) at once."""
    operator_only(db, user)
    path = sip.config.data_path / "moh" / name / filename
    if not path.is_file():
        raise HTTPException(404, f"no music file {name}/{filename}")
    before = {"bytes": path.stat().st_size}
    path.unlink()
    await sip.music_changed(name)
    audit(db, user, "moh.delete", f"{name}/{filename}", before, None)
    db.commit()
    return Response(status_code=204)


@router.put("/prompts/{language}/{name}", response_model=PromptOut,
            responses={**REFUSED, 404: {"description": "no such language or prompt"}},
            openapi_extra=UPLOAD)
async def put_prompt(language: str, name: str, request: Request, sip: Sip, user: User,
                     db: Db) -> PromptOut:
    """A recorded voice for a system prompt (the body is the file), in place of the
    espeak-ng one; stored as the 8 kHz WAV the engine plays."""
    operator_only(db, user)
    if name not in TEXTS.get(language, {}):
        raise HTTPException(404, f"no prompt {language}/{name}")
    samples = await checked(await upload(request))
    path = sip.prompts.path(name, language)
    await asyncio.to_thread(write_atomically, path, lambda f: soundfile.write(
        f, samples, ENGINE_RATE, format="WAV", subtype="PCM_16"))
    sip.prompts.forget(name, language)
    seconds = round(len(samples) / ENGINE_RATE, 2)
    audit(db, user, "prompt.record", f"{language}/{name}", None, {"seconds": seconds})
    db.commit()
    return PromptOut(language=language, name=name, seconds=seconds)
