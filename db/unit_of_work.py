"""One database transaction per GraphQL request."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import Executable
from sqlalchemy.engine import CursorResult, Result, Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.errors import ConstraintViolation

Opening = Callable[[AsyncConnection], Awaitable[None]]


class RequestDatabase:
    """The request's connection, opened on first use and kept in one transaction.

    GraphQL resolves sibling fields concurrently and a PostgreSQL connection runs one
    statement at a time, so statements queue on a lock. Resolvers never commit: the
    unit-of-work extension commits or rolls back once, at the end of the operation.
    """

    def __init__(self, engine: AsyncEngine, *, opening: Opening | None = None) -> None:
        self._engine = engine
        # Run at the start of every transaction: for a caller's request, the database
        # checks its session and records the row context row-level security reads
        # (db/sessions.SessionOpening). Without one, no patient row is visible.
        self._opening = opening
        self._connection: AsyncConnection | None = None
        self._lock = asyncio.Lock()

    @property
    def engine(self) -> AsyncEngine:
        """For work that must not share this request's transaction (a chain verify)."""
        return self._engine

    @property
    def is_open(self) -> bool:
        return self._connection is not None

    async def open(self) -> None:
        """Begin the transaction now (and run the opening), rather than at first use."""
        async with self._lock:
            await self._connect()

    async def _connect(self) -> AsyncConnection:
        if self._connection is None:
            self._connection = await self._engine.connect()
        if not self._connection.in_transaction():
            try:
                await self._connection.begin()
                if self._opening is not None:
                    await self._opening(self._connection)
            except BaseException:
                connection, self._connection = self._connection, None
                await connection.close()
                raise
        return self._connection

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction: a statement that fails inside it (say, a foreign key
        to a row that does not exist) does not abort the request's transaction."""
        connection = await self._connect()
        async with self._lock:
            nested = await connection.begin_nested()
        try:
            yield
        except BaseException:
            async with self._lock:
                await nested.rollback()
            raise
        async with self._lock:
            await nested.commit()

    async def execute(self, statement: Executable, parameters: Any = None) -> Result[Any]:
        async with self._lock:
            connection = await self._connect()
            try:
                return await connection.execute(statement, parameters)
            except IntegrityError as exc:
                raise ConstraintViolation(_constraint_name(exc)) from None

    async def fetch(self, sql: str, *arguments: Any) -> list[Any]:
        """A compiled statement straight to asyncpg (prepared once per connection, no
        SQLAlchemy on the way), inside the request's transaction: for planned reads."""
        async with self._lock:
            connection = await self._connect()
            raw = await connection.get_raw_connection()
            return await raw.driver_connection.fetch(sql, *arguments)  # type: ignore[no-any-return,union-attr]

    async def fetch_alone(self, sql: str, *arguments: Any) -> list[Any]:
        """One compiled statement as a transaction of its own (no BEGIN, no COMMIT: one
        round trip), on this request's connection before any transaction was opened on
        it, and without the opening: for a planned request whose statement checks the
        session itself (``db.audit.read_and_audit`` with ``checked``, or
        ``db.audit.session_check``)."""
        async with self._lock:
            if self._connection is None:
                self._connection = await self._engine.connect()
            if self._connection.in_transaction():
                raise RuntimeError("a statement alone cannot run inside the request's transaction")
            raw = await self._connection.get_raw_connection()
            try:
                return await raw.driver_connection.fetch(sql, *arguments)  # type: ignore[no-any-return,union-attr]
            except BaseException:
                # Not back to the pool: SQLAlchemy does not see the driver's errors, and a
                # connection the database ended would be handed to the next request.
                connection, self._connection = self._connection, None
                await connection.invalidate()
                await connection.close()
                raise

    async def rows(self, statement: Executable, parameters: Any = None) -> Sequence[Row[Any]]:
        return (await self.execute(statement, parameters)).all()

    async def first(self, statement: Executable, parameters: Any = None) -> Row[Any] | None:
        return (await self.execute(statement, parameters)).first()

    async def scalar(self, statement: Executable, parameters: Any = None) -> Any:
        return (await self.execute(statement, parameters)).scalar()

    async def rowcount(self, statement: Executable, parameters: Any = None) -> int:
        result = await self.execute(statement, parameters)
        assert isinstance(result, CursorResult)
        return result.rowcount

    async def copy(
        self, schema: str, table: str, columns: Sequence[str], records: Sequence[Sequence[Any]]
    ) -> None:
        """COPY rows into a table inside the request's transaction: one round trip
        whatever the number of rows (an INSERT is split by PostgreSQL's parameter limit)."""
        async with self._lock:
            connection = await self._connect()
            raw = await connection.get_raw_connection()
            await raw.driver_connection.copy_records_to_table(
                table, schema_name=schema, columns=list(columns), records=records
            )

    async def commit(self) -> None:
        async with self._lock:
            # Nothing begun, nothing to commit (a statement alone committed itself): no
            # trip through SQLAlchemy's greenlet for a no-op.
            if self._connection is not None and self._connection.in_transaction():
                await self._connection.commit()

    async def rollback(self) -> None:
        async with self._lock:
            if self._connection is not None and self._connection.in_transaction():
                await self._connection.rollback()

    async def close(self) -> None:
        async with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None:
                await connection.close()


def _constraint_name(exc: IntegrityError) -> str | None:
    driver_error = exc.orig.__cause__ if exc.orig is not None else None
    return getattr(driver_error, "constraint_name", None)
