#!/usr/bin/env python3
"""Writes redirect URLs for codes of links already stored, for the load tests.

    codes.py sqlite DB_FILE BASE_URL N OUT
    codes.py postgres PG_URL[,PG_URL...] BASE_URL N OUT

Picks N random generated links (no aliases) and writes BASE_URL/code, one per line.
Codes are the canonical Base62 (0-9A-Za-z) of the Snowflake ID, as the service makes them.
"""
import random
import sqlite3
import subprocess
import sys

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
QUERY = "SELECT id FROM links WHERE alias IS NULL ORDER BY random() LIMIT {n}"


def base62(n: int) -> str:
    out = []
    while True:
        n, r = divmod(n, 62)
        out.append(ALPHABET[r])
        if n == 0:
            return "".join(reversed(out))


def main() -> None:
    kind, source, base, n, out = sys.argv[1], sys.argv[2], sys.argv[3].rstrip("/"), int(sys.argv[4]), sys.argv[5]
    ids = []
    if kind == "sqlite":
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as db:
            ids = [row[0] for row in db.execute(QUERY.format(n=n))]
    else:
        for url in source.split(","):
            rows = subprocess.run(["psql", url, "-Atqc", QUERY.format(n=n)], check=True,
                                  capture_output=True, text=True).stdout.split()
            ids.extend(int(r) for r in rows)
        random.shuffle(ids)
        ids = ids[:n]
    if not ids:
        sys.exit("no links stored: run the shorten scenario first")
    with open(out, "w") as f:
        for i in ids:
            f.write(f"{base}/{base62(i)}\n")


if __name__ == "__main__":
    main()
