"""Request ids, structured JSON logs and Prometheus metrics.

Logs: one JSON object per line on stderr. Only the fields listed in
:data:`SAFE_FIELDS` are ever emitted from a record's extras, so an API key, a
request body or commercial data cannot reach the log by accident; messages
themselves never carry them (see the callers).

Metrics: label values are bounded — HTTP methods outside the standard ones count as ``other``, routes
are URL rules (``/api/v1/lots/<lot_id>``) or ``<unmatched>``, never raw paths. With gunicorn's several
worker processes, ``ipledger gateway serve``
sets ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` aggregates every worker;
without it (tests, one process) each app has its own registry.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
import traceback
import uuid

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported)

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

SAFE_FIELDS = ("request_id", "method", "path", "route", "status", "duration_ms", "org", "role", "key_id",
               "event_type", "event_id", "tx_id", "block_number", "outcome", "problem_type", "code",
               "function", "items", "remote_addr", "user_agent", "error_type",
               "client_cert_org", "client_cert_subject")  # mutual TLS (gateway/tls.py): never the certificate


def request_id_from(header_value: str | None) -> str:
    """The caller's X-Request-Id when it is a sane token, else a new one."""
    if header_value and _REQUEST_ID.fullmatch(header_value):
        return header_value
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in SAFE_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info and record.levelno >= logging.ERROR:
            # the type and the frames, not the exception text (it may carry request data)
            etype = record.exc_info[0]
            out["error_type"] = etype.__name__ if etype else None
            tb = traceback.extract_tb(record.exc_info[2])[-12:]
            out["stack"] = [f"{f.filename}:{f.lineno} in {f.name}" for f in tb]
        return json.dumps(out, ensure_ascii=False, default=str)


class OwnInfoOnly(logging.Filter):
    """Below WARNING, only the gateway's own records (``ipledger.*``) and gunicorn's: another library's messages are
    written as it words them (the PDF fonts' subsetting lists a report's characters, a customs value's digits
    among them), and none of them is needed to run the gateway."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.startswith(("ipledger.", "gunicorn."))


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for the root logger (idempotent)."""
    root = logging.getLogger()
    for h in root.handlers:
        if isinstance(h.formatter, JsonFormatter):
            return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(OwnInfoOnly())
    root.handlers[:] = [handler]
    root.setLevel(level)


def gunicorn_logger_class():
    """gunicorn's logger without its access log. The gateway logs each request itself, once, as a JSON line
    (``create_app``); gunicorn would still format an access line per request (its ``atoms``: a tenth of a
    millisecond of the worker's time, bench/gateway_http.py) for a logger that writes nowhere."""
    from gunicorn.glogging import Logger

    class GatewayLogger(Logger):
        def access(self, resp, req, environ, request_time):
            return None

    return GatewayLogger


def gunicorn_logconfig(level: str = "INFO") -> dict:
    """gunicorn's own logs in the same JSON format."""
    return {
        "version": 1, "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "filters": {"own": {"()": OwnInfoOnly}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr",
                                "filters": ["own"]}},
        "loggers": {"gunicorn.error": {"handlers": ["stderr"], "level": level, "propagate": False}},
        "root": {"handlers": ["stderr"], "level": level},
    }


# ----------------------------------------------------------------------------------------- metrics

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


# Label values must be bounded (each value is a time series, kept until the process ends): what a client
# sends is never a label value as such.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
UNMATCHED_ROUTE = "<unmatched>"


def method_label(method: str | None) -> str:
    """The request's method as a label: a standard one, or ``other`` (any method a client invents)."""
    method = (method or "").upper()
    return method if method in HTTP_METHODS else OTHER_METHOD


def route_label(url_rule) -> str:
    """The URL rule that matched (``/api/v1/lots/<lot_id>``), never the raw path; ``<unmatched>`` when no
    rule matched (404, and 405: the path is known but not for this method)."""
    if url_rule is None:
        return UNMATCHED_ROUTE
    return re.sub(r"<[a-z]+:([a-z_]+)>", r"<\1>", url_rule.rule)   # without converters: <ident:lot_id> -> <lot_id>


def status_label(status: int) -> str:
    return str(status) if 100 <= status <= 599 else "other"


class _Recorded:
    """A metric whose recording never fails what it counts. Under ``gateway serve`` each worker writes its
    figures to memory-mapped files in ``PROMETHEUS_MULTIPROC_DIR``: a directory deleted underneath or a file
    that cannot grow makes ``inc``/``observe`` raise — after a commit, that turned a recorded event into a 500,
    or into 503 "the ledger cannot be reached". The figure is lost instead, and the first failure of each metric
    in a process is logged with its error (a programming error, a wrong label count, shows there too). A disk
    that fills under a mapping already made is the kernel's to report (SIGBUS), not an exception."""

    def __init__(self, metric):
        self.metric = metric
        self.name = getattr(metric, "_name", type(metric).__name__)
        self._failed = False

    def labels(self, *values: str) -> "_RecordedChild":
        return _RecordedChild(self, values)

    def _record(self, values: tuple, how: str, amount: float) -> None:
        try:
            getattr(self.metric.labels(*values), how)(amount)
        except Exception as e:  # noqa: BLE001 - a figure is never worth an answer
            if not self._failed:
                self._failed = True
                logging.getLogger("ipledger.gateway.metrics").warning(
                    "metric %s not recorded (%s: %s); figures of this metric may be missing from /metrics",
                    self.name, type(e).__name__, e, extra={"error_type": type(e).__name__})


class _RecordedChild:
    def __init__(self, parent: _Recorded, values: tuple):
        self._parent, self._values = parent, values

    def inc(self, amount: float = 1) -> None:
        self._parent._record(self._values, "inc", amount)

    def observe(self, amount: float) -> None:
        self._parent._record(self._values, "observe", amount)


class Metrics:
    """The gateway's figures. Recording one never raises (:class:`_Recorded`)."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("ipledger_gateway_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("ipledger_gateway_request_duration_seconds", "HTTP request latency by route",
                                 ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.fabric = Histogram("ipledger_gateway_fabric_call_duration_seconds",
                                "Fabric calls (evaluate, submit, block look-up) by function and outcome",
                                ["call", "function", "outcome"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.events = Counter("ipledger_gateway_events_total", "Business events by type and outcome "
                              "(committed, replayed, refused, failed)", ["type", "outcome"], registry=self.registry)
        self.answers = Counter("ipledger_gateway_query_answers_total", "Queries of kept answers (gateway/answers.py) "
                               "by function: answer reused (channel height unchanged) or evaluated",
                               ["function", "outcome"], registry=self.registry)
        for name in ("requests", "latency", "fabric", "events", "answers"):
            setattr(self, name, _Recorded(getattr(self, name)))

    def observe_request(self, method: str | None, url_rule, status: int, seconds: float) -> None:
        """One HTTP request, with bounded labels (:func:`method_label`, :func:`route_label`)."""
        method, route = method_label(method), route_label(url_rule)
        self.requests.labels(method, route, status_label(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def exposition(self) -> bytes:
        directory = multiprocess_dir()
        if directory:
            from prometheus_client import multiprocess
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=directory)
            return generate_latest(registry)
        return generate_latest(self.registry)
