"""``python -m ops.stack.prefect_cli server start …``: the Prefect CLI with the fixes of
``ops.stack.compat``, which every server process of the stack runs; ``prepare-database`` applies
the migrations and block types once before ``up --redis`` starts several API processes.

A module of its own rather than a package's ``__main__``: ``server start --workers N`` spawns its
API processes afresh, and spawning re-imports the main module by name (as ``__mp_main__``), which
multiprocessing skips for a ``__main__`` module, so the children would run without the fixes.
"""

from __future__ import annotations

import asyncio
import sys

from ops.stack.compat import hybrid_setters_ignored_in_bulk_dml, null_body_params_take_defaults


async def _prepare_prefect_database() -> None:
    """Exactly what a Prefect API process does when it starts (``create_app``'s lifespan: the
    migrations, then the block types), for ``up --redis`` to do once before N processes start:
    started together, they race on registering block types and the loser exits."""
    from prefect.server.database import provide_database_interface
    from prefect.server.models.block_registration import run_block_auto_registration

    db = provide_database_interface()
    await db.create_db()
    session = await db.session()
    async with session:
        await run_block_auto_registration(session=session)


def _prefect_cli(argv: list[str]) -> None:
    """The Prefect CLI with the fixes of ``ops.stack.compat``."""
    null_body_params_take_defaults()
    hybrid_setters_ignored_in_bulk_dml()
    if argv == ["prepare-database"]:
        asyncio.run(_prepare_prefect_database())
        return
    from prefect.cli import app

    sys.argv = ["prefect", *argv]
    app()


if __name__ == "__main__":  # pragma: no cover (runs as the stack's server process)
    _prefect_cli(sys.argv[1:])
elif __name__ == "__mp_main__":  # pragma: no cover
    # An API process of `server start --workers N`: uvicorn spawns it afresh, and spawning
    # re-imports this module under this name, so it gets the same fixes as its parent.
    null_body_params_take_defaults()
    hybrid_setters_ignored_in_bulk_dml()
