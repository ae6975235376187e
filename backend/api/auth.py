"""/api/auth: sign-in and sign-out (added by the sign-in work)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/auth", tags=["auth"])
