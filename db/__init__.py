"""Persistence: models, engine and unit of work, repositories, migrations, and the
embedded PostgreSQL bootstrap."""
