"""Set-up calls for bench/run: register the bench users, mint one forever session per user,
run a SQL file on a SQLite database (the seed of the SQLite scale runs).

    python3 bench/client.py users BASE USERS_FILE
    python3 bench/client.py tokens BASE USERS_FILE TOKENS_FILE
    python3 bench/client.py sql DATABASE SQL_FILE [name=integer ...]
"""
import json
import sqlite3
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def post(url, body):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def users(path):
    with open(path) as f:
        return [line.split() for line in f if line.strip()]


def sql(database, path, params):
    """Runs each statement of the file in turn (autocommit; the file says BEGIN and COMMIT),
    with the named parameters (:name) it uses."""
    values = {name: int(value) for name, value in (p.split("=", 1) for p in params)}
    connection = sqlite3.connect(database, isolation_level=None)
    statement = ""
    with open(path) as f:
        for line in f:
            statement += line
            if sqlite3.complete_statement(statement):
                connection.execute(statement, values).fetchall()
                statement = ""
    connection.close()


def main():
    if sys.argv[1] == "sql":
        return sql(sys.argv[2], sys.argv[3], sys.argv[4:])
    command, base, users_file = sys.argv[1:4]
    people = users(users_file)
    with ThreadPoolExecutor(max_workers=4) as pool:
        if command == "users":
            list(pool.map(lambda u: post(f"{base}/api/v2/user/register",
                                         {"email": u[0], "password": u[1]}), people))
        elif command == "tokens":
            tokens = pool.map(lambda u: post(f"{base}/api/v2/user/session",
                                             {"email": u[0], "password": u[1],
                                              "remember_me": True})["session_token"], people)
            with open(sys.argv[4], "w") as f:
                f.write("".join(t + "\n" for t in tokens))
        else:
            sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
