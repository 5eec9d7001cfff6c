"""moto's DynamoDB/S3 server, made safe for concurrency tests, with fault injection.

moto's threaded server does not serialise conditional writes: two concurrent compare-and-swaps
on one item can both succeed. DynamoDB itself applies each request atomically, so this wrapper
holds one process-wide lock around every request (the response body is produced inside the lock).

Fault injection, for the storage fault tests (never reachable in production; this is a test
emulator):
  POST /_fault/throttle?n=N   the next N DynamoDB requests get ProvisionedThroughputExceeded
  POST /_fault/fail_after?n=N after N more DynamoDB requests, refuse everything with HTTP 503
  POST /_fault/down           refuse every DynamoDB request with HTTP 503 (the service is "stopped")
  POST /_fault/delay?ms=N     every DynamoDB request waits N ms before it is handled (a network
                              round trip; concurrent requests wait side by side, as on a network)
  POST /_fault/up             clear all faults
  GET  /_fault/stats          JSON counters: requests, throttled, refused
"""

import json
import sys
import threading
import time

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

LOCK = threading.Lock()
STATE = {"throttle": 0, "fail_after": None, "down": False, "delay_ms": 0, "requests": 0, "throttled": 0, "refused": 0}
APP = DomainDispatcherApplication(create_backend_app)


def _json(start_response, status, body, headers=()):
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(data)))] + list(headers))
    return [data]


def _fault_endpoint(environ, start_response):
    path = environ.get("PATH_INFO", "")
    query = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
    n = int(query.get("n", "0"))
    ms = int(query.get("ms", "0"))
    if path == "/_fault/throttle":
        STATE["throttle"] = n
    elif path == "/_fault/fail_after":
        STATE["fail_after"] = n
    elif path == "/_fault/down":
        STATE["down"] = True
    elif path == "/_fault/delay":
        STATE["delay_ms"] = ms
    elif path == "/_fault/up":
        STATE.update(throttle=0, fail_after=None, down=False, delay_ms=0)
    elif path != "/_fault/stats":
        return _json(start_response, "404 Not Found", {"error": "unknown fault endpoint"})
    return _json(start_response, "200 OK", {k: v for k, v in STATE.items()})


def app(environ, start_response):
    if environ.get("PATH_INFO", "").startswith("/_fault/"):
        with LOCK:
            return _fault_endpoint(environ, start_response)
    is_dynamo = "DynamoDB" in environ.get("HTTP_X_AMZ_TARGET", "")
    if is_dynamo and STATE["delay_ms"]:
        # Outside the lock: the latency of requests in flight together overlaps.
        time.sleep(STATE["delay_ms"] / 1000)
    with LOCK:
        if is_dynamo:
            STATE["requests"] += 1
            if STATE["fail_after"] is not None:
                if STATE["fail_after"] <= 0:
                    STATE["down"] = True
                else:
                    STATE["fail_after"] -= 1
            if STATE["down"]:
                STATE["refused"] += 1
                return _json(start_response, "503 Service Unavailable", {"__type": "com.amazon.coral.availability#ServiceUnavailableException", "message": "emulator is down (fault injection)"})
            if STATE["throttle"] > 0:
                STATE["throttle"] -= 1
                STATE["throttled"] += 1
                return _json(start_response, "400 Bad Request", {"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", "message": "throttled (fault injection)"})
        # Produce the whole body inside the lock so the request is applied atomically.
        return list(APP(environ, start_response))


if __name__ == "__main__":
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 4566
    run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)
