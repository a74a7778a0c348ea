"""The machine's PostgreSQL (127.0.0.1:5432, trust auth, user postgres) for tests of the production wiring."""

from __future__ import annotations

PG = "postgres@127.0.0.1:5432"


def psql(sql: str) -> None:
    """Run one statement with autocommit (CREATE/DROP DATABASE cannot run in a transaction)."""
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()
