#!/usr/bin/env python3
"""Hostile and careless clients against a running `quanteval serve`, over raw
sockets and plain HTTP: malformed JSON, wrong types, over-limit requests, an
oversized body, a streamed answer, connections dropped at every stage (during generation too),
non-HTTP bytes, a second request beyond --max-concurrency 1. After each the
server must still answer /health and a valid completion. Exits 0 when every
check held, else prints the failed checks and exits 1.

  abuse_server.py --port N --api-key KEY --max-request-bytes N --max-tokens-limit N
"""
import argparse
import http.client
import json
import socket
import sys
import threading
import time

failures = []


def check(condition, what):
    if not condition:
        failures.append(what)
        print("FAILED:", what, file=sys.stderr)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--max-request-bytes", type=int, required=True)
    parser.add_argument("--max-tokens-limit", type=int, required=True)
    args = parser.parse_args()
    auth = {"Authorization": "Bearer " + args.api_key, "Content-Type": "application/json"}

    def request(method, path, body=None, headers=None, timeout=120):
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=timeout)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=auth if headers is None else headers)
        response = conn.getresponse()
        raw = response.read()
        conn.close()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        return response.status, parsed

    def is_error(status, body, expected_status, words):
        ok = status == expected_status and isinstance(body, dict) and isinstance(body.get("error"), dict)
        ok = ok and all(k in body["error"] for k in ("message", "type", "code"))
        return ok and all(w in body["error"]["message"] for w in words)

    def healthy(after):
        status, body = request("GET", "/health", headers={})
        check(status == 200 and body == {"status": "ok"}, f"/health after {after}: {status} {body}")
        status, body = request("POST", "/v1/completions", {"prompt": [1, 2, 3], "max_tokens": 3, "temperature": 0})
        check(status == 200 and len(body["choices"]) == 1 and body["usage"]["completion_tokens"] == 3,
              f"a valid completion after {after}: {status} {body}")

    def raw(chunks, read=False, pause=0.05):
        s = socket.create_connection(("127.0.0.1", args.port), timeout=30)
        for c in chunks:
            s.sendall(c)
            time.sleep(pause)
        answer = b""
        if read:
            try:
                while True:
                    piece = s.recv(65536)
                    if not piece:
                        break
                    answer += piece
            except (ConnectionResetError, socket.timeout):
                pass
        s.close()
        return answer

    # Authentication: every route but /health needs the key.
    status, body = request("GET", "/v1/models", headers={})
    check(is_error(status, body, 401, ["API key"]), f"no API key: {status} {body}")
    status, body = request("GET", "/health", headers={})
    check(status == 200, f"/health without a key: {status}")

    # Malformed and unsupported requests: a 4xx JSON error naming the problem.
    cases = [
        (b"{not json", 400, ["not valid JSON"]),
        (b"[1, 2, 3]", 400, ["JSON object"]),
        ({"max_tokens": 3}, 400, ["'prompt'"]),
        ({"prompt": [1, 2], "max_tokens": "x"}, 400, ["max_tokens"]),
        ({"prompt": [1, 2], "max_tokens": args.max_tokens_limit + 1}, 400, ["max_tokens"]),
        ({"prompt": [1, 2], "max_tokens": 0}, 400, ["max_tokens"]),
        ({"prompt": [10 ** 12], "max_tokens": 2}, 400, ["token id"]),
        ({"prompt": [], "max_tokens": 2}, 400, ["empty"]),
        ({"prompt": [1, 2], "temperature": "hot"}, 400, ["temperature"]),
        ({"prompt": [1, 2], "temperature": -1}, 400, ["temperature"]),
        ({"prompt": [1, 2], "top_p": 0}, 400, ["top_p"]),
        ({"prompt": [1, 2], "stop": [1]}, 400, ["stop"]),
        ({"prompt": [1, 2], "logprobs": 5}, 400, ["logprobs"]),
        ({"prompt": [1, 2], "stream": "yes"}, 400, ["stream"]),
        ({"prompt": [1, 2], "n": 3}, 400, ["n = 1"]),
        ({"prompt": [1, 2], "model": "not-this-one"}, 404, ["not-this-one"]),
    ]
    for body, expected, words in cases:
        status, answer = request("POST", "/v1/completions", body)
        check(is_error(status, answer, expected, words), f"{body!r}: {status} {answer}")
    status, answer = request("POST", "/v1/chat/completions", {"messages": "hi"})
    check(is_error(status, answer, 400, ["messages"]), f"chat without a message list: {status} {answer}")
    status, answer = request("GET", "/no/such/route")
    check(is_error(status, answer, 404, []), f"unknown route: {status} {answer}")
    healthy("malformed requests")

    # A stop string taken from the greedy text itself: cut there, finish "stop", stop_reason names it.
    status, free = request("POST", "/v1/completions", {"prompt": [1, 2, 3], "max_tokens": 24, "temperature": 0})
    text = free["choices"][0]["text"]
    check(status == 200 and len(text) >= 12, f"a free greedy completion: {status} {free}")
    stop = text[6:10]
    status, cut = request("POST", "/v1/completions",
                          {"prompt": [1, 2, 3], "max_tokens": 24, "temperature": 0, "stop": ["never-there", stop]})
    choice = cut["choices"][0] if status == 200 else {}
    check(choice.get("finish_reason") == "stop" and choice.get("stop_reason") == stop
          and choice.get("text") == text[: text.find(stop)], f"stop {stop!r} in {text!r}: {status} {cut}")

    # "stream": the same answer in server-sent events (the whole text in one event), usage, [DONE].
    conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=120)
    conn.request("POST", "/v1/completions", body=json.dumps(
        {"prompt": [1, 2, 3], "max_tokens": 24, "temperature": 0, "stream": True,
         "stream_options": {"include_usage": True}}).encode(), headers=auth)
    response = conn.getresponse()
    events = [line[len("data: "):] for line in response.read().decode().split("\n") if line.startswith("data: ")]
    conn.close()
    check(response.status == 200 and response.getheader("Content-Type", "").startswith("text/event-stream")
          and events and events[-1] == "[DONE]", f"a streamed completion: {response.status} {events}")
    chunks = [json.loads(e) for e in events[:-1]]
    streamed = "".join(c["text"] for chunk in chunks for c in chunk["choices"])
    finishes = [c["finish_reason"] for chunk in chunks for c in chunk["choices"] if c["finish_reason"]]
    check(streamed == text and finishes == [free["choices"][0]["finish_reason"]]
          and chunks[-1]["usage"] == free["usage"], f"the streamed answer equals the plain one: {chunks}")

    # Larger than --max-request-bytes: 413 before the body is read.
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {args.api_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {args.max_request_bytes + 1}\r\n\r\n").encode()
    answer = raw([head, b"{" * 1000], read=True)
    check(answer.startswith(b"HTTP/1.1 413"), f"oversized body: {answer[:80]!r}")
    healthy("an oversized body")

    # Connections dropped at every stage, and bytes that are not HTTP.
    body = json.dumps({"prompt": [1, 2, 3], "max_tokens": 200, "temperature": 0}).encode()
    full = (f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {args.api_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    raw([])                                   # connect, close
    raw([b"POST /v1/compl"])                  # half a request line
    raw([full[: len(full) - len(body) // 2]])  # headers and half the body
    raw([full])                               # a whole request, gone before the answer (mid-generation)
    raw([b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256))], read=True)  # a TLS hello
    raw([b"GARBAGE\r\n\r\n"], read=True)
    healthy("abrupt disconnects")

    # --max-concurrency 1: a second request while one generates gets 429; the first still completes.
    results = {}

    def long_request():
        results["long"] = request("POST", "/v1/completions",
                                  {"prompt": [1, 2, 3], "max_tokens": args.max_tokens_limit, "temperature": 0})

    worker = threading.Thread(target=long_request)
    worker.start()
    time.sleep(0.5)
    status, answer = request("POST", "/v1/completions", {"prompt": [4, 5], "max_tokens": 2})
    check(is_error(status, answer, 429, ["max-concurrency"]), f"a request beyond --max-concurrency: {status} {answer}")
    worker.join()
    status, answer = results["long"]
    check(status == 200 and (answer["usage"]["completion_tokens"] == args.max_tokens_limit
                             or answer["choices"][0]["finish_reason"] == "stop"),
          f"the long request beside the refused one: {status}")
    healthy("a refused request")

    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
