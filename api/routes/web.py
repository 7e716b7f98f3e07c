"""The web chat page at `/`: plain HTML and JavaScript from api/static, no build step."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"
router = APIRouter(tags=["web"], include_in_schema=False)


@router.get("/")
async def page():
    return FileResponse(STATIC / "index.html", media_type="text/html")
