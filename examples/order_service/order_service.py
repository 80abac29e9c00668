#!/usr/bin/env python3
"""The source document's order service: a local database transaction and a
message to Sluice that must agree, even when the service dies between the
two commits.

An order is placed in two steps: the order row is written to SQLite and
committed, then "order created" is sent to the `orders` topic in a Kafka
transaction and committed. If the service dies in between, the broker holds
a half message: a transaction nobody will commit. Sluice's check-back asks
the service's checker what became of the local transaction; the checker
looks for the order row and answers commit (the row is there) or rollback
(it is not), and the broker completes the transaction accordingly.

Usage:
  order_service.py checker PORT DB        answer the broker's checks from DB
  order_service.py place BOOTSTRAP DB ORDER_ID [--die-before-commit] [--no-row]

`place` writes the order row (unless --no-row, which rolls the local
transaction back), sends "order created ORDER_ID" in a transaction with
transactional id `order-service-ORDER_ID`, and commits it, unless
--die-before-commit, which kills the process (SIGKILL) after the send and
before the commit, as a crash would.
"""

import http.server
import json
import os
import signal
import sqlite3
import sys

from kafka import KafkaProducer

TOPIC = "orders"
PREFIX = "order-service-"


def open_db(path):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, status TEXT)")
    db.commit()
    return db


def place(bootstrap, db_path, order_id, die_before_commit, no_row):
    db = open_db(db_path)
    db.execute("INSERT INTO orders (id, status) VALUES (?, 'created')", (order_id,))
    if no_row:
        db.rollback()
    else:
        db.commit()
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=PREFIX + order_id)
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(TOPIC, key=order_id.encode(), value=f"order created {order_id}".encode())
    producer.flush()
    if die_before_commit:
        print(f"dying before the commit of order {order_id}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    producer.commit_transaction()
    producer.close()
    print(f"placed order {order_id}", flush=True)


def serve_checker(port, db_path):
    class Checker(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            check = json.loads(self.rfile.read(length))
            transactional_id = check.get("transactional_id", "")
            decision = "unknown"
            if transactional_id.startswith(PREFIX):
                order_id = transactional_id[len(PREFIX):]
                row = open_db(db_path).execute(
                    "SELECT status FROM orders WHERE id = ?", (order_id,)
                ).fetchone()
                decision = "commit" if row else "rollback"
            print(f"check {transactional_id}: {decision}", flush=True)
            body = json.dumps({"decision": decision}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", port), Checker)
    print(f"checker listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


def main():
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "checker":
        serve_checker(int(args[1]), args[2])
        return 0
    if len(args) >= 4 and args[0] == "place":
        place(args[1], args[2], args[3], "--die-before-commit" in args, "--no-row" in args)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
