#!/usr/bin/env python3
"""A small OpenAI-compatible server that misbehaves on request, for the tests of
`quanteval run --endpoint`. Standard library only.

  fake_openai_server.py --mode MODE --model NAME --log FILE

Prints {"port": N} on stdout once it listens on 127.0.0.1 (any free port).
Every POST body is appended to --log as one JSON line, so a test can check what
the client sent. Modes:

  ok               a valid answer: the text "    return None\\n", finish "stop"
                   with stop_reason "\\ndef" (a stop string), usage from the prompt
  eos              finish "stop", stop_reason null (end-of-sequence)
  length           finish "length", completion_tokens = max_tokens
  garbage          HTTP 200 with a body that is not JSON
  truncated        HTTP 200 with the valid answer cut in half
  flaky            the first attempt of every prompt gets HTTP 500, the second is ok
  wrong_model      /v1/models lists another model
  answer_as_other  answers name another model than the one asked for
  hang             never answers /v1/completions (sleeps far beyond any test timeout)
  prompt_mismatch  usage.prompt_tokens one more than the prompt sent
  over_limit       completion_tokens = max_tokens + 5
  no_models        no GET /v1/models route (404); answers as ok
"""
import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    lock = threading.Lock()
    seen = set()  # prompts answered 500 once (flaky)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *unused):
            pass

        def reply(self, status, body, content_type="application/json"):
            data = body if isinstance(body, bytes) else body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/v1/models" and args.mode != "no_models":
                name = "someone-else/other-model" if args.mode == "wrong_model" else args.model
                self.reply(200, json.dumps({"object": "list", "data": [{"id": name, "object": "model"}]}))
            elif self.path == "/version":
                self.reply(200, json.dumps({"version": "fake-1.0"}))
            else:
                self.reply(404, json.dumps({"error": {"message": "no route", "type": "not_found", "code": 404}}))

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            request = json.loads(self.rfile.read(length))
            with lock:
                with open(args.log, "a") as log:
                    log.write(json.dumps({"path": self.path, "body": request}) + "\n")
            prompt = request["prompt"]
            key = json.dumps(prompt)
            mode = args.mode
            if mode == "hang":
                time.sleep(600)
                return
            if mode == "flaky":
                with lock:
                    first = key not in seen
                    seen.add(key)
                if first:
                    self.reply(500, json.dumps({"error": {"message": "injected failure", "type": "server_error"}}))
                    return
            if mode == "garbage":
                self.reply(200, b"\x00\xffthis is not json<html>", "text/html")
                return
            max_tokens = request["max_tokens"]
            completion_tokens = min(5, max_tokens)
            finish, stop_reason = "stop", "\ndef"
            if mode == "eos":
                stop_reason = None
            if mode == "length":
                finish, stop_reason, completion_tokens = "length", None, max_tokens
            if mode == "over_limit":
                completion_tokens = max_tokens + 5
            answer = {
                "id": "cmpl-fake",
                "object": "text_completion",
                "model": "someone-else/other-model" if mode == "answer_as_other" else request["model"],
                "choices": [{"index": 0, "text": "    return None\n", "finish_reason": finish,
                             "stop_reason": stop_reason, "logprobs": None}],
                "usage": {"prompt_tokens": len(prompt) + (1 if mode == "prompt_mismatch" else 0),
                          "completion_tokens": completion_tokens,
                          "total_tokens": len(prompt) + completion_tokens},
            }
            body = json.dumps(answer)
            if mode == "truncated":
                body = body[: len(body) // 2]
            self.reply(200, body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
