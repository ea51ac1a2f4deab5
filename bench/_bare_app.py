"""The stack's ceiling for bench/serve.py: a bare waitress + sqlite3 WSGI app, no nsl.

    python bench/_bare_app.py DB_PATH [--threads N]

Serves GET /api/v1/tables/{table}/objects/{key}: the row whose "id" is the key (as text: PATH_INFO,
already decoded), as a JSON object; 404 otherwise. One read-only connection per waitress thread. Prints
`serving http://127.0.0.1:PORT/` (a free port), then serves until killed. Not a benchmark itself.
"""
import sqlite3, sys, threading

import orjson
from waitress.server import create_server

DB, THREADS = sys.argv[1], int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 4
local = threading.local()


def app(environ, start_response):
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = local.conn = sqlite3.connect(f"file:{DB}?mode=ro", uri=True, check_same_thread=False)
    parts = environ["PATH_INFO"].split("/")  # '', api, v1, tables, T, objects, KEY
    row = cur = None
    if len(parts) == 7 and parts[1:4] == ["api", "v1", "tables"] and parts[5] == "objects":
        table = parts[4].replace('"', '""')
        cur = conn.execute(f'SELECT * FROM "{table}" WHERE "id" = ?', (parts[6],))
        row = cur.fetchone()
    if row is None:
        body, status = b'{"error": "not found"}', "404 Not Found"
    else:
        body, status = orjson.dumps(dict(zip([d[0] for d in cur.description], row))), "200 OK"
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


server = create_server(app, host="127.0.0.1", port=0, threads=THREADS)
print(f"serving http://127.0.0.1:{server.effective_port}/", flush=True)
server.run()
