"""`pcm-ops aws rotate-key|reencrypt`: rotate the key ring of stored AWS credentials."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from backend.aws.credentials import key_ring_source
from backend.aws.rotation import RotationReport, reencrypt, rotate_key
from backend.cli.client import open_database
from backend.cli.console import JsonOpt, console, emit_json, fail, load_settings
from backend.db.session import session_factory
from backend.security.credentials_crypto import DecryptionFailed, KeyRingError

aws_app = typer.Typer(help="AWS credential storage: key rotation.", no_args_is_help=True)
RetireOpt = Annotated[
    bool, typer.Option("--retire", help="Remove keys no stored credential uses any more.")
]


def _run(rotate: bool, retire: bool, as_json: bool) -> None:
    settings = load_settings()
    engine = open_database(settings)
    try:
        action = rotate_key if rotate else reencrypt
        report: RotationReport = action(
            sessions=session_factory(engine), keys=key_ring_source(settings), retire=retire
        )
    except (KeyRingError, DecryptionFailed) as exc:
        fail(str(exc), 2)
    finally:
        engine.dispose()
    if as_json:
        emit_json(asdict(report))
        return
    console.print(f"active key: {report.active_key}")
    console.print(f"re-sealed credentials: {report.resealed}")
    console.print(f"retired keys: {', '.join(report.retired) or 'none'}")


@aws_app.command("rotate-key")
def rotate_key_cmd(retire: RetireOpt = False, as_json: JsonOpt = False) -> None:
    """Add a new key, make it active and re-seal every stored credential under it."""
    _run(True, retire, as_json)


@aws_app.command("reencrypt")
def reencrypt_cmd(retire: RetireOpt = False, as_json: JsonOpt = False) -> None:
    """Re-seal every stored credential under the active key (e.g. after editing the ring)."""
    _run(False, retire, as_json)
