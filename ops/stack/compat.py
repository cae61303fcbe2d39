"""Workarounds for the libraries Prefect 3.8.8's server runs on, applied in the server processes
only (``ops.stack.prefect_cli``): FastAPI's handling of ``null`` bodies and SQLAlchemy 2.1's bulk
DML hook. Both are no-ops on the versions pinned in pyproject.toml."""

from __future__ import annotations

from typing import Any, cast


def null_body_params_take_defaults() -> None:
    """Make a JSON ``null`` top-level body parameter mean "not given", as FastAPI used to.

    The locked FastAPI (0.154) validates an explicit ``null`` against the parameter's type, but
    Prefect 3.8.8's own client sends ``{"limit": null, "offset": null}`` to endpoints declared
    ``limit: int = Body(None)`` (``prefect deploy``'s worker check, ``prefect deployment ls``,
    ``read_deployments()`` …), which that server then answers 422. Earlier FastAPI releases
    substituted the default for a null optional parameter; this restores that in the server
    process only. Nested values and single-model bodies (PATCH payloads) are not affected.
    """
    import fastapi
    from fastapi._compat import Undefined
    from fastapi.dependencies import utils

    major, minor = (int(x) for x in fastapi.__version__.split(".")[:2])
    if (major, minor) < (0, 151):  # the locked FastAPI still treats null as "not given"
        return
    original = utils._validate_value_with_model_field
    if getattr(original, "_crmsync_patched", False):
        return

    def validate(*, field: Any, value: Any, values: dict[str, Any], loc: tuple[str, ...]) -> Any:
        if value is None and not field.field_info.is_required():
            value = Undefined
        return original(field=field, value=value, values=values, loc=loc)

    validate._crmsync_patched = True  # type: ignore[attr-defined]
    utils._validate_value_with_model_field = validate


def hybrid_setters_ignored_in_bulk_dml() -> None:
    """Let the scheduler insert flow runs again under SQLAlchemy 2.1.

    Prefect 3.8.8 bulk-inserts scheduled runs as dicts that carry a ``state`` key, which is a
    hybrid property with a setter on ``FlowRun``. SQLAlchemy 2.0 ignored such keys (the states
    are inserted right after); 2.1 calls the hybrid's ``bulk_dml`` hook and raises "Can't
    evaluate bulk DML statement" when there is none, so ``schedule_recent_deployments`` and the
    scheduler fail and no scheduled run is ever created. A no-op hook restores 2.0's behaviour.
    """
    from prefect.server.database import orm_models
    from sqlalchemy.ext.hybrid import hybrid_property

    def ignore(cls: Any, mapping: Any, value: Any) -> None:
        return None

    if not hasattr(hybrid_property, "bulk_dml"):  # SQLAlchemy 2.0 (pinned): nothing to restore
        return
    for model in (orm_models.FlowRun, orm_models.TaskRun):
        for attr in vars(model).values():
            if (
                isinstance(attr, hybrid_property)
                and attr.fset
                and not getattr(attr, "bulk_dml_setter", None)
            ):
                # The hook exists only in SQLAlchemy 2.1, whose attribute the 2.0 stubs lack.
                cast(Any, attr).bulk_dml_setter = ignore
