"""`agentflow-jobs serve`: the AgentFlow service over HTTP (FastAPI under uvicorn).

The engine runs with the provider of an embedded profile (``--profile``, default
``local``); batches live in ``--store`` (else the profile's store, else
``$AGENTFLOW_STORE``, else ``~/.local/share/agentflow/local.db``): a SQLite file, or a
``postgresql://`` URL that any number of instances share (``engine/store_pg.py``). API keys come from
``--api-keys-file`` and/or ``AGENTFLOW_API_KEYS``; with none, the server refuses to
start unless ``--no-auth`` is given.
"""

from __future__ import annotations

from pathlib import Path

import click

from agentflow_jobs.errors import ConfigError, StateError

__all__ = ["command"]


@click.command(name="serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--store", "store", default=None, metavar="PATH|URL",
              help="Batch store: a SQLite file, or a postgresql:// URL shared by several instances.")
@click.option("--profile", default=None, help="Embedded profile whose provider runs the work "
              "(default $AGENTFLOW_PROFILE, else `local`).")
@click.option("--api-keys-file", default=None, metavar="FILE",
              help="Accepted API keys, one per line (also AGENTFLOW_API_KEYS, comma-separated).")
@click.option("--no-auth", is_flag=True, help="Accept requests without an API key.")
@click.option("--max-body-mb", default=16, show_default=True, type=click.IntRange(1),
              help="Largest JSON request body.")
@click.option("--max-upload-mb", default=128, show_default=True, type=click.IntRange(1),
              help="Largest uploaded input file.")
def command(
    host: str,
    port: int,
    store: str | None,
    profile: str | None,
    api_keys_file: str | None,
    no_auth: bool,
    max_body_mb: int,
    max_upload_mb: int,
) -> int:
    """Serve the AgentFlow API (completions and durable batches) over HTTP."""
    import uvicorn

    from agentflow_jobs.sdk.profiles import default_store_path, load_profile
    from agentflow_jobs.server import create_app
    from agentflow_jobs.server.auth import read_keys

    resolved = load_profile(profile)
    if resolved.engine != "embedded" or resolved.provider is None:
        raise ConfigError(
            f"profile {resolved.name!r} points at another server; `serve` needs an embedded "
            "profile with a `provider:` block",
            path=resolved.source,
            key=f"profiles.{resolved.name}",
        )
    store_path = store or resolved.store or default_store_path()
    app = create_app(
        provider_config=resolved.provider,
        store_path=store_path,
        api_keys=read_keys(api_keys_file),
        no_auth=no_auth,
        default_model=resolved.model,
        max_body_bytes=max_body_mb * 1024 * 1024,
        max_upload_bytes=max_upload_mb * 1024 * 1024,
    )
    _check_store(store_path)
    # SIGTERM / Ctrl-C: uvicorn stops accepting, then the app's shutdown stops the workers
    # and leaves unfinished items queued for the next start.
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=10)
    return 0


def _check_store(path: str | Path) -> None:
    """Open the store once up front: a bad one is an `error:` line, not a server traceback."""
    from agentflow_jobs.engine.store_pg import open_store

    try:
        open_store(path).close()
    except OSError as exc:
        raise StateError(f"{path}: cannot open batch store: {exc.strerror or exc}") from None
